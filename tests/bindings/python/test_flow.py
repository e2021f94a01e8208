"""The Coffer SDK from Python, end to end, against a real coffer-vault on loopback.

tests/bindings/python/run.sh builds the bindings, starts the vault and runs pytest with
target/bindings/python on PYTHONPATH (`import coffer`).
"""

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import coffer

PASSWORD = b"correct horse battery staple"
MIB = 1024 * 1024


def options(config_dir: Path, repo: Path) -> coffer.DeviceOptions:
    return coffer.DeviceOptions(
        config_dir=str(config_dir),
        repo=str(repo),
        key_store=coffer.KeyStoreChoice.FILE,
        ksf_profile="argon2id-test",  # cheap Argon2id: tests only
    )


def random_file(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class Listener(coffer.ProgressListener):
    """Counts file events; optionally cancels at the first event or slows each down."""

    def __init__(self, cancel=None, delay=0.0):
        self.files = 0
        self.events = 0
        self.cancel = cancel
        self.delay = delay

    def on_event(self, event):
        self.events += 1
        if event.is_file():
            self.files += 1
        if self.cancel is not None:
            self.cancel.cancel()
        if self.delay:
            time.sleep(self.delay)


class CancelAfter(coffer.ProgressListener):
    """Cancels `handle` when the `after`-th file starts (events come from many threads)."""

    def __init__(self, handle, after):
        self.handle = handle
        self.after = after
        self.files = 0
        self.lock = threading.Lock()

    def on_event(self, event):
        if event.is_file():
            with self.lock:
                self.files += 1
                if self.files == self.after:
                    self.handle.cancel()


@pytest.fixture
def vault():
    url = os.environ.get("COFFER_TEST_VAULT_URL")
    if not url:
        pytest.fail("run through tests/bindings/python/run.sh (it starts the vault)")
    token = Path(os.environ["COFFER_TEST_TOKEN_FILE"]).read_text().strip().encode()
    return coffer.VaultAccess(url=url, token=token, account="alice")


def test_old_device_to_new_device_with_a_wrong_then_the_right_password(tmp_path, vault):
    repo = tmp_path / "cloud"
    chat = tmp_path / "chat"
    random_file(chat / "msgstore.db", 300_000, 1)
    random_file(chat / "media" / "photo.jpg", 1_000_000, 2)
    (chat / "notes.txt").write_text("hello from the old phone\n")

    old = coffer.Coffer.create_with_password(options(tmp_path / "old", repo), vault, PASSWORD)
    total = 300_000 + 1_000_000 + 25
    before = old.estimate_backup([str(chat)])
    assert (before.files, before.files_changed, before.bytes_to_upload) == (3, 3, total)
    progress = Listener()
    first = old.backup([str(chat)], progress, None)
    assert first.files == 3 and progress.files == 3
    assert first.vault_head_kept, first.vault_head_error
    # The next backup's estimate: nothing to upload, then one changed note.
    same = old.estimate_backup([str(chat)])
    assert (same.files_changed, same.bytes_to_upload, same.bytes_total) == (0, 0, total)
    with (chat / "notes.txt").open("a") as f:
        f.write("!")
    one = old.estimate_backup([str(chat)])
    assert (one.files_changed, one.bytes_to_upload) == (1, 26)
    (chat / "notes.txt").write_text("hello from the old phone\n")  # as backed up
    with pytest.raises(coffer.CofferError) as missing:
        old.estimate_backup([str(tmp_path / "nope")])
    assert missing.value.code() == "path_not_found"
    status = old.status()
    assert status.snapshots == 1
    max_guesses = status.vault.max_guesses
    assert status.vault.guesses_left == max_guesses
    recovery_key = bytearray(old.recovery_key(PASSWORD))
    assert len(recovery_key) == 79

    new_dir = tmp_path / "new"
    with pytest.raises(coffer.CofferError) as wrong:
        coffer.Coffer.connect_with_password(options(new_dir, repo), vault, b"not my password")
    assert wrong.value.code() == "wrong_password"
    assert wrong.value.guesses_left() == max_guesses - 1
    assert b"not my password".decode() not in wrong.value.message()
    assert coffer.vault_status(vault).guesses_left == max_guesses - 1
    assert not (new_dir / "config.json").exists()

    new = coffer.Coffer.connect_with_password(options(new_dir, repo), vault, PASSWORD)
    assert coffer.vault_status(vault).guesses_left == max_guesses
    report = new.restore("latest", str(tmp_path / "restored"), [], coffer.Overwrite.NEVER, Listener(), None)
    assert report.complete and report.files == 3
    assert tree(chat) == tree(tmp_path / "restored" / "chat")

    # A third device with only the recovery key restores one path.
    with pytest.raises(coffer.CofferError) as bad:
        coffer.Coffer.connect_with_recovery_key(options(tmp_path / "third", repo), b"0" * 64, None)
    assert bad.value.code() == "wrong_recovery_key"
    third = coffer.Coffer.connect_with_recovery_key(
        options(tmp_path / "third", repo), bytes(recovery_key), None
    )
    recovery_key[:] = bytes(len(recovery_key))  # wipe the app's copy
    some = tmp_path / "some"
    third.restore("latest", str(some), ["chat/notes.txt"], coffer.Overwrite.NEVER, None, None)
    assert list(tree(some)) == ["chat/notes.txt"]

    # Rotate, then change the password; the new password connects a fourth device at
    # once: rotation sealed the head the vault keeps again under the new key.
    rotated = old.rotate_key(PASSWORD)
    assert rotated.vault_updated and rotated.vault_head_kept and len(rotated.recovery_key) == 79
    old.change_password(b"a new password for the vault", None)
    with pytest.raises(coffer.CofferError) as old_password:
        coffer.Coffer.connect_with_password(options(tmp_path / "fourth", repo), vault, PASSWORD)
    assert old_password.value.code() == "wrong_password"
    fourth = coffer.Coffer.connect_with_password(
        options(tmp_path / "fourth", repo), vault, b"a new password for the vault"
    )
    assert len(fourth.snapshots()) == 1
    fourth.restore("latest", str(tmp_path / "after-rotation"), [], coffer.Overwrite.NEVER, None, None)
    assert tree(chat) == tree(tmp_path / "after-rotation" / "chat")
    assert old.backup([str(chat)], None, None).vault_head_kept
    assert len(fourth.snapshots()) == 2

    disabled = old.disable(False)
    assert disabled.vault_record_deleted and not disabled.backups_deleted
    with pytest.raises(coffer.CofferError) as gone:
        old.status()
    assert gone.value.code() == "config_missing"
    assert not coffer.vault_status(vault).exists


def test_a_cancelled_and_a_killed_backup_resume_without_uploading_finished_packs(tmp_path):
    repo = tmp_path / "cloud"
    config = tmp_path / "device"
    device = coffer.Coffer.create_recovery_key_only(options(config, repo))
    big = tmp_path / "big"
    for i in range(40):
        random_file(big / f"v{i:02}.mp4", MIB, 100 + i)

    handle = coffer.CancelHandle()
    with pytest.raises(coffer.CofferError) as cancelled:
        device.backup([str(big)], Listener(cancel=handle), handle)
    assert cancelled.value.code() == "cancelled"
    assert device.snapshots() == []

    # Another process backs up slowly; SIGKILL it once two packs are indexed.
    index = repo / "index"
    child = subprocess.Popen([sys.executable, __file__, "child", str(config), str(big)])
    deadline = time.monotonic() + 120
    while len(list(index.iterdir())) < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, "the child finished before two packs were indexed"
    child.kill()
    child.wait()
    assert device.snapshots() == []
    done = sum((repo / "data" / p.name).stat().st_size for p in index.iterdir())
    assert done >= 8 * MIB

    resumed = device.backup([str(big)], None, None)
    print(f"{done // 1024} KiB survived the kill; the resume uploaded {resumed.bytes_added // 1024} KiB")
    # Only what was not packed yet is uploaded (plus indexes, trees, the snapshot).
    assert resumed.bytes_added <= 40 * MIB - done + MIB
    out = tmp_path / "out"
    device.restore("latest", str(out), [], coffer.Overwrite.NEVER, None, None)
    assert tree(big) == tree(out / "big")

    # A cancelled restore: the files it finished are complete, the one it was writing is
    # gone, nothing else is there; the same restore again finishes.
    handle = coffer.CancelHandle()
    part = tmp_path / "part"
    with pytest.raises(coffer.CofferError) as stopped:
        device.restore("latest", str(part), [], coffer.Overwrite.NEVER, CancelAfter(handle, 10), handle)
    assert stopped.value.code() == "cancelled"
    source, partial = tree(big), tree(part / "big")
    assert 0 < len(partial) < len(source)
    assert all(source.get(name) == data for name, data in partial.items()), "a partial file"
    assert [p for p in part.rglob("*") if p.is_file() and p.parent.name != "big"] == []
    again = device.restore("latest", str(part), [], coffer.Overwrite.NEVER, None, None)
    assert again.complete and again.unchanged == len(partial)
    assert again.files == len(source) - len(partial)
    assert tree(part / "big") == source


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    # The process the test kills: a backup slowed down by its progress listener.
    dev = coffer.Coffer.open(sys.argv[2], None)
    dev.backup([sys.argv[3]], Listener(delay=0.15), None)
    print("child: the backup finished before it was killed")
