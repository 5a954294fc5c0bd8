"""Memory driver specifics: safe under concurrent use from many threads."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from moorage.storage import ObjectNotFoundError, create_driver
from storage.backends import read_all

THREADS = 16
ROUNDS = 200


def test_concurrent_puts_reads_moves_and_uploads() -> None:
    driver = create_driver("memory")
    start = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        start.wait()
        own = f"t{n}/data"
        shared = "shared/data"
        for i in range(ROUNDS):
            payload = f"{n}:{i}".encode() * 50
            driver.put(own, [payload[:7], payload[7:]])
            assert read_all(driver.read(own, chunk_size=13)) == payload
            driver.put(shared, [payload])
            try:
                body = read_all(driver.read(shared))
            except ObjectNotFoundError:
                body = None  # another thread moved it away
            if body is not None:  # whole versions only, never a mix
                assert body == body[: len(body) // 50] * 50
            driver.move(own, f"t{n}/moved")
            assert driver.exists(f"t{n}/moved")
            session_id, metadata = driver.initiate_upload()
            _, metadata = driver.append_upload(session_id, metadata, 0, [payload])
            _, metadata = driver.append_upload(session_id, metadata, len(payload), [b"!"])
            driver.complete_upload(session_id, metadata, f"t{n}/upload{i}")
            assert driver.stat(f"t{n}/upload{i}").size == len(payload) + 1
            if i % 10 == 0:
                list(driver.list(""))
                list(driver.list_uploads())
                with contextlib.suppress(ObjectNotFoundError):
                    driver.move(shared, f"t{n}/stolen")

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(worker, n) for n in range(THREADS)]:
            future.result()

    keys = set(driver.list(""))
    for n in range(THREADS):
        assert f"t{n}/moved" in keys
        assert all(f"t{n}/upload{i}" in keys for i in range(ROUNDS))
    assert list(driver.list_uploads()) == []
