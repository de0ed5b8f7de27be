"""Encryption of sensitive ``user_config`` values.

AES-256-GCM with the config key's name as associated data: a ciphertext copied to another key fails
to decrypt instead of silently answering for it. The 32-byte key lives in a file outside the
database: ``CODEX_MCP_SECRET_KEY_FILE``, else ``secret.key`` in the user data directory. The file is
created atomically with mode 0600 on the first ``config set --secret``; a key file readable by
group or others is refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from codex_mcp.errors import ConfigError

_PREFIX = "v1:"
_NONCE = 12
_KEY_BYTES = 32


def default_key_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("codex-mcp", appauthor=False)) / "secret.key"


def _aad(name: str) -> bytes:
    return b"codex-mcp user_config:" + name.encode("utf-8")


class KeyFile:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_key_file()

    def load(self, *, create: bool) -> bytes:
        """The key; created (0600, atomically) when missing and ``create`` is set."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            if not create:
                raise ConfigError(
                    f"the secret key file {self.path} is missing, so encrypted config values cannot be read; "
                    "restore it (or set CODEX_MCP_SECRET_KEY_FILE to it), or set the values again with "
                    "`codex-mcp config set KEY VALUE --secret`"
                ) from None
            self._create()
            try:
                info = self.path.stat()
            except OSError as exc:  # e.g. a symbolic link to a missing file: link() found the name taken
                raise self._unreadable(exc) from exc
        except OSError as exc:
            raise self._unreadable(exc) from exc
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"the secret key file {self.path} is not a regular file; point CODEX_MCP_SECRET_KEY_FILE at one"
            )
        if info.st_mode & 0o077:
            raise ConfigError(
                f"the secret key file {self.path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {self.path}` and try again"
            )
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise self._unreadable(exc) from exc
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != _KEY_BYTES:
            raise ConfigError(
                f"{self.path} is not a codex-mcp key file (expected 32 bytes, base64); restore the right file "
                "or point CODEX_MCP_SECRET_KEY_FILE at it"
            )
        return key

    def _unreadable(self, exc: OSError) -> ConfigError:
        return ConfigError(
            f"cannot read the secret key file {self.path}: {exc.strerror}; point CODEX_MCP_SECRET_KEY_FILE "
            "at a readable key file"
        )

    def _create(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = folder / f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, base64.b64encode(os.urandom(_KEY_BYTES)) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # link() never replaces: when two processes create the key at once, one wins and
                # both then use the winner's key.
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the secret key file {self.path}: {exc.strerror}; set CODEX_MCP_SECRET_KEY_FILE "
                "to a path you can write"
            ) from exc


def encrypt(key: bytes, name: str, plaintext: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), _aad(name))
    return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt(key: bytes, name: str, stored: str, *, key_path: Path) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    problem = (
        f"cannot decrypt config value {name!r}: it was not encrypted for this key with the key file {key_path} "
        f"(another key file, or a value copied from another key); restore the original key file, or set it "
        f"again with `codex-mcp config set {name} VALUE --secret`"
    )
    if not stored.startswith(_PREFIX):
        raise ConfigError(problem)
    try:
        blob = base64.urlsafe_b64decode(stored[len(_PREFIX) :].encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ConfigError(problem) from None
    if len(blob) <= _NONCE:
        raise ConfigError(problem)
    try:
        return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], _aad(name)).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise ConfigError(problem) from None
