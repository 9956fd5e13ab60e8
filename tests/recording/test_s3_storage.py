"""S3Storage against moto_server (a real S3-compatible endpoint over HTTP), and LocalStorage's
side of the same protocol."""

import pytest

from talkgate.errors import NotFoundError, StorageError
from talkgate.recording.storage import LocalStorage, S3Storage, open_storage
from talkgate.settings import Settings
from tests.support.servers import S3_CREDENTIALS


@pytest.fixture
async def store(s3_endpoint, s3_bucket):
    storage = S3Storage(s3_bucket, "rec", endpoint_url=s3_endpoint, region="us-east-1")
    await storage.check()
    yield storage
    await storage.aclose()


async def collect(storage, key, start, end) -> bytes:
    return b"".join([block async for block in storage.read(key, start, end)])


async def test_a_local_folder_reads_ranges_the_same_way(tmp_path):
    local = LocalStorage(tmp_path / "rec")
    await local.check()
    data = bytes(range(256)) * 4000
    await local.put_bytes("calls/abc.wav", data)
    assert await local.size("calls/abc.wav") == len(data)
    assert await collect(local, "calls/abc.wav", 0, len(data) - 1) == data
    assert await collect(local, "calls/abc.wav", 1000, 1999) == data[1000:2000]
    with pytest.raises(NotFoundError):
        await local.size("calls/nothing.wav")


@pytest.mark.s3
async def test_put_bytes_then_size_and_ranged_reads(store):
    data = bytes(range(256)) * 4000  # 1 MB, more than one read block
    assert await store.put_bytes("calls/abc.wav", data) == len(data)
    assert await store.size("calls/abc.wav") == len(data)
    assert await collect(store, "calls/abc.wav", 0, len(data) - 1) == data
    assert await collect(store, "calls/abc.wav", 1000, 1999) == data[1000:2000]
    assert store.local_path("calls/abc.wav") is None


@pytest.mark.s3
async def test_put_file_uploads_a_large_file_in_parts_and_removes_the_spool_copy(store, tmp_path):
    data = bytes(range(251)) * 80_000  # 20 MB: above botocore's 8 MB multipart threshold
    source = tmp_path / "x.wav.part"
    source.write_bytes(data)
    assert await store.put_file("calls/big.wav", source) == len(data)
    assert not source.exists()
    assert await collect(store, "calls/big.wav", len(data) - 10, len(data) - 1) == data[-10:]


@pytest.mark.s3
async def test_objects_live_under_the_prefix(store, s3_endpoint, s3_bucket):
    import boto3

    await store.put_bytes("calls/p1.wav", b"RIFF")
    listed = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").list_objects_v2(
        Bucket=s3_bucket
    )
    assert [o["Key"] for o in listed["Contents"]] == ["rec/calls/p1.wav"]


@pytest.mark.s3
async def test_a_missing_object_is_not_found(store):
    with pytest.raises(NotFoundError):
        await store.size("calls/nothing.wav")


@pytest.mark.s3
@pytest.mark.parametrize("key", ["../etc/passwd.wav", "calls/a/b.wav", "calls/x.mp3", "calls/.wav"])
async def test_keys_that_are_not_talkgates_own_are_refused(store, key):
    with pytest.raises(StorageError, match="invalid storage key"):
        await store.put_bytes(key, b"x")


@pytest.mark.s3
async def test_a_missing_bucket_fails_the_start_up_check_with_its_name(s3_endpoint, s3_bucket):
    storage = S3Storage("no-such-bucket-here", "", endpoint_url=s3_endpoint, region="us-east-1")
    try:
        with pytest.raises(StorageError, match="no-such-bucket-here"):
            await storage.check()
    finally:
        await storage.aclose()


@pytest.mark.s3
async def test_an_unreachable_endpoint_is_a_storage_error(s3_bucket):
    storage = S3Storage("talkgate-x", "", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    try:
        with pytest.raises(StorageError, match="head_bucket failed"):
            await storage.check()
    finally:
        await storage.aclose()


def test_open_storage_reads_the_url_and_settings():
    settings = Settings(_env_file=None, s3_endpoint_url="http://s3.local:9000", s3_region="eu-west-1")  # type: ignore[call-arg]
    store = open_storage("s3://my-bucket/some/prefix/", settings)
    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix, store.endpoint_url, store.region) == (
        "my-bucket",
        "some/prefix",
        "http://s3.local:9000",
        "eu-west-1",
    )
    with pytest.raises(StorageError, match="invalid bucket name"):
        open_storage("s3://../x", settings)
    with pytest.raises(StorageError, match="not supported"):
        open_storage("ftp://x/y", settings)


async def delete_and_list(storage) -> None:
    """Every write has a key of its own: listing by a call's and source's prefix finds what a
    finished recording stored; delete removes one object, and a missing one is not an error."""
    keys = ["calls/c1/relay-0a1b.wav", "calls/c1/relay-9f.wav", "calls/c1/provider-77.wav"]
    for key in keys:
        await storage.put_bytes(key, b"RIFF" + key.encode())
    assert await storage.keys("calls/c1/relay-") == ["calls/c1/relay-0a1b.wav", "calls/c1/relay-9f.wav"]
    assert await storage.keys("calls/c2/relay-") == []
    await storage.delete("calls/c1/relay-0a1b.wav")
    await storage.delete("calls/c1/relay-0a1b.wav")  # again: nothing there is fine
    assert await storage.keys("calls/c1/relay-") == ["calls/c1/relay-9f.wav"]
    with pytest.raises(NotFoundError):
        await storage.size("calls/c1/relay-0a1b.wav")
    assert await storage.size("calls/c1/provider-77.wav") == len(b"RIFFcalls/c1/provider-77.wav")
    with pytest.raises(StorageError, match="invalid storage prefix"):
        await storage.keys("calls/../")


async def test_a_local_folder_deletes_and_lists_by_prefix(tmp_path):
    local = LocalStorage(tmp_path / "rec")
    await local.check()
    await delete_and_list(local)


@pytest.mark.s3
async def test_a_bucket_deletes_and_lists_by_prefix(store):
    await delete_and_list(store)


async def test_credentials_in_the_env_file_reach_the_bucket(s3_bucket, s3_endpoint, tmp_path, monkeypatch):
    """A deployer who follows the README puts AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in .env:
    botocore reads only the process environment, so talkgate's settings must carry them."""
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in S3_CREDENTIALS.items() if k.startswith("AWS_")))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    settings = Settings(_env_file=env_file, s3_endpoint_url=s3_endpoint, s3_region="us-east-1")  # type: ignore[call-arg]
    storage = open_storage(f"s3://{s3_bucket}/rec", settings)
    try:
        await storage.put_bytes("calls/env-file.wav", b"RIFF")
        assert b"".join([b async for b in storage.read("calls/env-file.wav", 0, 3)]) == b"RIFF"
    finally:
        await storage.aclose()
    assert "talkgate-test-secret" not in repr(settings)
