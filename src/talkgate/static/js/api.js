// Talking to talkgate over HTTP: the JWT (kept in sessionStorage), JSON helpers, readable errors.
const TOKEN_KEY = "talkgate.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function userOf(jwt) {
  try {
    const payload = JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return { sub: payload.sub, exp: payload.exp };
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Transcript lines the page heard itself, posted to the call log one at a time, in order.
export class TranscriptLog {
  constructor(conversationId, onError) {
    this.url = `/api/calls/${encodeURIComponent(conversationId)}/transcript`;
    this.onError = onError;
    this.done = Promise.resolve();
  }

  add(role, text) {
    if (typeof text !== "string" || !text) return;
    this.done = this.done
      .then(() => api(this.url, { method: "POST", body: { role, text } }))
      .catch((err) => this.onError({ code: err.code || "internal", message: err.message, fatal: false }));
  }
}

// keepalive: the request outlives the page (a tab closing ends its call with it).
export async function api(path, { method = "GET", body, auth = true, keepalive = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    keepalive,
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const detail = data && Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : null;
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || detail || text);
  }
  return data;
}

export async function signInLocally(user = "local-user") {
  const { token: jwt } = await api("/api/dev/token", { method: "POST", body: { user }, auth: false });
  setToken(jwt);
  return jwt;
}
