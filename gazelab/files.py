"""The data dir: private to the user running GazeLab (0700; files 0600), and the secret
key that signs cookies, created once, atomically, whatever the number of processes."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from gazelab.config import Config, ConfigError

SECRET_FILE = "secret_key"
# Folders of data_dir that hold copies of faces: the training-data shard store (format in
# gazelab.shardfiles; erasure deletes the shards that held the erased samples and every
# other file there) and export zips (erasure deletes them all).
SNAPSHOT_DIR = "snapshots"
EXPORT_DIR = "exports"
MIN_SECRET_LENGTH = 16


def private_data_dir(config: Config) -> Path:
    """Create the data dir 0700 and make this process create every file 0600 (umask 077):
    the database, snapshots, exports and Redis files hold faces."""
    os.umask(0o077)
    path = config.data_dir
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def private_subdir(config: Config, name: str) -> Path:
    path = private_data_dir(config) / name
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def write_atomically(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write `data` to a private temp file, then put it at `path` in one step: a rename,
    or with `exclusive` a hard link that fails if `path` exists (returns False then)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(temp, path)
            return True
        try:
            os.link(temp, path)
            return True
        except FileExistsError:
            return False
    finally:
        temp.unlink(missing_ok=True)


def secret_key(config: Config) -> str:
    """[server] secret_key, or the one in data_dir/secret_key (created by the first process
    that needs it; every other process reads that same key)."""
    if config.server.secret_key:
        key, source = config.server.secret_key, "[server] secret_key"
    else:
        path = private_data_dir(config) / SECRET_FILE
        if not path.exists():
            write_atomically(path, secrets.token_hex(32).encode(), exclusive=True)
        key, source = path.read_text().strip(), str(path)
    if len(key) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{source}: the secret key is empty or shorter than {MIN_SECRET_LENGTH} "
                          "characters; set a longer one (or delete the file to create a new one)")
    return key
