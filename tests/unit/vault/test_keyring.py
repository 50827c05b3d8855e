"""Master keys: the text format, the key file's safety rules, and the keyring in use."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.errors import (
    InvalidArgument,
    MasterKeyMissing,
    MasterKeyUnavailable,
    MutlsError,
)
from mutls.vault.keyring import (
    KEY_BYTES,
    Keyring,
    KeyState,
    MasterKey,
    add_key_to_file,
    create_keyring_file,
    format_keyring,
    generate_master_key,
    parse_keyring,
    read_keyring_file,
    remove_key_from_file,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_format_then_parse_gives_the_same_keys() -> None:
    """A keyring written by format_keyring reads back with every version and key intact."""
    keys = [generate_master_key(2), generate_master_key(1), generate_master_key(7)]
    parsed = parse_keyring(format_keyring(keys), source="test")
    assert parsed == {k.version: k for k in keys}


def test_formatted_keyring_is_sorted_and_warns_that_it_is_a_secret() -> None:
    """The file text lists versions in order under a header about secrecy and backups."""
    text = format_keyring([MasterKey(3, KEY_B), MasterKey(1, KEY_A)])
    key_lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert key_lines == [
        f"mutls-master-key v1 {b64url(KEY_A)}",
        f"mutls-master-key v3 {b64url(KEY_B)}",
    ]
    header = text.lower()
    assert "secret" in header
    assert "back it up separately from the" in header


def test_comments_and_blank_lines_are_ignored() -> None:
    """Comments, indentation and blank lines around key lines are allowed."""
    text = f"# keys\n\n   mutls-master-key v4 {b64url(KEY_A)}  \n# end\n"
    assert parse_keyring(text, source="test") == {4: MasterKey(4, KEY_A)}


@pytest.mark.parametrize(
    "bare",
    [
        b64url(KEY_A),
        base64.b64encode(KEY_A).decode(),
        base64.urlsafe_b64encode(KEY_A).decode(),
        f"\n  {base64.b64encode(KEY_A).decode()}\n",
    ],
    ids=["base64url", "base64", "base64url-padded", "surrounded-by-whitespace"],
)
def test_a_bare_key_is_version_one(bare: str) -> None:
    """A single base64 or base64url string of 32 bytes is accepted as version 1."""
    assert parse_keyring(bare, source="MUTLS_MASTER_KEY") == {1: MasterKey(1, KEY_A)}


def test_a_bare_key_of_the_wrong_size_is_refused_without_echoing_it() -> None:
    """A bare 16-byte key: the error gives the size found, not the key."""
    short = b64url(KEY_A[:16])
    with pytest.raises(InvalidArgument) as caught:
        parse_keyring(short, source="MUTLS_MASTER_KEY")
    assert "MUTLS_MASTER_KEY line 1" in caught.value.message
    assert "found 16 bytes" in caught.value.message
    assert short not in caught.value.message
    assert short not in caught.value.hint


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"mutls-master-key v1 {b64url(KEY_A[:31])}", "found 31 bytes"),
        (f"mutls-master-key v1 {b64url(KEY_A)}!", "not valid base64"),
        (f"mutls-master-key {b64url(KEY_A)}", "expected 3 fields"),
        (f"mutls-master-key {b64url(KEY_A)} v1", "version from v1"),
        (f"mutls-master-key v0 {b64url(KEY_A)}", "version from v1"),
        (f"mutls-master-key v99999999999 {b64url(KEY_A)}", "version from v1"),
        (f"master-key v1 {b64url(KEY_A)}", "does not start with mutls-master-key"),
        (b64url(KEY_B), "does not start with mutls-master-key"),  # a bare key among others
    ],
    ids=["short", "bad-char", "no-version", "swapped", "v0", "huge", "prefix", "bare-in-list"],
)
def test_a_bad_line_names_source_and_line_but_not_the_key(line: str, expected: str) -> None:
    """Each malformed line is refused with its source and line number and no key text."""
    text = f"# header\nmutls-master-key v9 {b64url(KEY_B)}\n{line}\n"
    with pytest.raises(InvalidArgument) as caught:
        parse_keyring(text, source="/etc/mutls/master.key")
    error = caught.value
    assert "/etc/mutls/master.key line 3" in error.message
    assert expected in error.message
    for secret in (b64url(KEY_A), b64url(KEY_A[:31]), b64url(KEY_B)):
        assert secret not in error.message
        assert secret not in error.hint


def test_a_duplicate_version_is_refused_naming_both_lines() -> None:
    """Two keys labelled v1: refused, naming both lines, without either key."""
    text = f"mutls-master-key v1 {b64url(KEY_A)}\n\nmutls-master-key v1 {b64url(KEY_B)}\n"
    with pytest.raises(InvalidArgument) as caught:
        parse_keyring(text, source="MUTLS_MASTER_KEY")
    message = caught.value.message
    assert "MUTLS_MASTER_KEY line 3" in message
    assert "line 1" in message
    assert "version 1" in message
    assert b64url(KEY_A) not in message
    assert b64url(KEY_B) not in message


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n\n"])
def test_an_empty_keyring_is_master_key_missing(text: str) -> None:
    """No key at all is master_key_missing, naming where mutls looked."""
    with pytest.raises(MasterKeyMissing, match="MUTLS_MASTER_KEY"):
        parse_keyring(text, source="MUTLS_MASTER_KEY")


def test_format_refuses_duplicates_and_nothing() -> None:
    """format_keyring never writes an unreadable keyring."""
    with pytest.raises(InvalidArgument, match="version 1 twice"):
        format_keyring([MasterKey(1, KEY_A), MasterKey(1, KEY_B)])
    with pytest.raises(InvalidArgument):
        format_keyring([])


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_our_error(text: str) -> None:
    """The parser turns any text into keys or a MutlsError, never a traceback."""
    try:
        keys = parse_keyring(text, source="fuzz")
    except MutlsError:
        return
    assert all(isinstance(k, MasterKey) and len(k.key) == KEY_BYTES for k in keys.values())


@given(st.binary(min_size=32, max_size=32), st.integers(min_value=1, max_value=2**31 - 1))
def test_any_key_and_version_round_trip(key: bytes, version: int) -> None:
    """Every possible key and version survives format then parse."""
    assert parse_keyring(format_keyring([MasterKey(version, key)]), source="t") == {
        version: MasterKey(version, key)
    }


# --- MasterKey and Keyring ------------------------------------------------------------------


def test_master_key_repr_hides_the_key() -> None:
    """Neither repr nor str of a key or a keyring shows key bytes in any encoding."""
    key = MasterKey(1, KEY_A)
    keyring = Keyring({1: key}, 1)
    for text in (repr(key), str(key), repr(keyring), str(keyring)):
        assert repr(KEY_A) not in text
        assert KEY_A.hex() not in text
        assert b64url(KEY_A) not in text
    assert repr(key) == "MasterKey(version=1)"


def test_check_value_identifies_a_key_without_revealing_it() -> None:
    """The check value is 16 hex characters, stable for a key and different for another."""
    value = MasterKey(1, KEY_A).check_value
    assert re.fullmatch(r"[0-9a-f]{16}", value)
    assert value == MasterKey(5, KEY_A).check_value
    assert value != MasterKey(1, KEY_B).check_value
    assert value not in KEY_A.hex()


@pytest.mark.parametrize(
    ("version", "key"),
    [(0, KEY_A), (1, KEY_A[:31]), (1, KEY_A + b"x"), (True, KEY_A)],
    ids=["v0", "31-bytes", "33-bytes", "bool-version"],
)
def test_master_key_rejects_bad_values(version: int, key: bytes) -> None:
    """A master key is exactly 32 bytes with an integer version of at least 1."""
    with pytest.raises(InvalidArgument):
        MasterKey(version, key)


def test_generated_keys_are_random_32_bytes() -> None:
    """generate_master_key gives a fresh 32-byte key for the version asked."""
    one, two = generate_master_key(3), generate_master_key(3)
    assert one.version == 3
    assert len(one.key) == KEY_BYTES
    assert one.key != two.key


def test_keyring_lookups() -> None:
    """active, get and versions answer from the keys given."""
    keyring = Keyring({1: MasterKey(1, KEY_A), 2: MasterKey(2, KEY_B)}, 2)
    assert keyring.active == MasterKey(2, KEY_B)
    assert keyring.get(1) == MasterKey(1, KEY_A)
    assert keyring.versions == (1, 2)
    assert 1 in keyring
    assert 3 not in keyring


def test_keyring_unknown_version_is_master_key_unavailable() -> None:
    """Asking for a version the keyring lacks names that version and those it has."""
    keyring = Keyring({1: MasterKey(1, KEY_A)}, 1)
    with pytest.raises(MasterKeyUnavailable) as caught:
        keyring.get(4)
    assert "version 4" in caught.value.message
    assert "versions 1" in caught.value.message


def test_keyring_active_version_must_be_present() -> None:
    """A keyring whose active version is missing cannot be built."""
    with pytest.raises(MasterKeyUnavailable, match="version 2"):
        Keyring({1: MasterKey(1, KEY_A)}, 2)


def test_keyring_refuses_a_key_filed_under_another_version() -> None:
    """keys[v].version must be v, or a data key would be wrapped under the wrong label."""
    with pytest.raises(InvalidArgument):
        Keyring({2: MasterKey(1, KEY_A)}, 2)


def test_key_states() -> None:
    """The three states have the names stored in the database."""
    assert [s.value for s in KeyState] == ["active", "retired", "revoked"]


# --- the key file ---------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_key_file_is_private_and_holds_version_one(tmp_path: Path) -> None:
    """create_keyring_file writes version 1 with mode 0600, readable back."""
    path = tmp_path / "master.key"
    key = create_keyring_file(path)
    assert key.version == 1
    assert mode(path) == 0o600
    assert read_keyring_file(path) == {1: key}
    assert "mutls-master-key v1" in path.read_text()


def test_create_never_overwrites_a_key_file(tmp_path: Path) -> None:
    """An existing key file is refused, and left exactly as it was."""
    path = tmp_path / "master.key"
    create_keyring_file(path)
    before = path.read_bytes()
    with pytest.raises(InvalidArgument, match="already exists"):
        create_keyring_file(path)
    assert path.read_bytes() == before


def test_missing_key_file_is_master_key_missing(tmp_path: Path) -> None:
    """No file: master_key_missing naming the path."""
    path = tmp_path / "absent.key"
    with pytest.raises(MasterKeyMissing, match=re.escape(str(path))):
        read_keyring_file(path)


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o620])
def test_key_file_open_to_others_is_refused(tmp_path: Path, file_mode: int) -> None:
    """A key file readable or writable by group or others is refused with `chmod 600 PATH`."""
    path = tmp_path / "master.key"
    create_keyring_file(path)
    path.chmod(file_mode)
    with pytest.raises(InvalidArgument) as caught:
        read_keyring_file(path)
    assert caught.value.hint == f"chmod 600 {path}"
    assert f"{file_mode:o}" in caught.value.message


def test_key_file_errors_do_not_echo_keys(tmp_path: Path) -> None:
    """A broken key file is reported by path and line, never by its content."""
    path = tmp_path / "master.key"
    path.write_text(f"mutls-master-key v1 {b64url(KEY_A[:20])}\n")
    path.chmod(0o600)
    with pytest.raises(InvalidArgument) as caught:
        read_keyring_file(path)
    assert f"{path} line 1" in caught.value.message
    assert b64url(KEY_A[:20]) not in caught.value.message


def test_add_key_appends_the_next_version(tmp_path: Path) -> None:
    """add_key_to_file keeps every key and adds highest version + 1, still mode 0600."""
    path = tmp_path / "master.key"
    first = create_keyring_file(path)
    second = add_key_to_file(path)
    third = add_key_to_file(path)
    assert (second.version, third.version) == (2, 3)
    assert read_keyring_file(path) == {1: first, 2: second, 3: third}
    assert mode(path) == 0o600


def test_remove_key_drops_one_version(tmp_path: Path) -> None:
    """remove_key_from_file drops that version only; removing it again changes nothing."""
    path = tmp_path / "master.key"
    create_keyring_file(path)
    second = add_key_to_file(path)
    remove_key_from_file(path, 1)
    assert read_keyring_file(path) == {2: second}
    remove_key_from_file(path, 1)
    assert read_keyring_file(path) == {2: second}
    assert mode(path) == 0o600


def test_remove_refuses_to_empty_the_keyring(tmp_path: Path) -> None:
    """The last key cannot be removed: an empty keyring decrypts nothing."""
    path = tmp_path / "master.key"
    key = create_keyring_file(path)
    with pytest.raises(InvalidArgument, match="only one"):
        remove_key_from_file(path, 1)
    assert read_keyring_file(path) == {1: key}


def test_concurrent_additions_never_lose_a_version(tmp_path: Path) -> None:
    """Writers adding versions at once are serialised: every key added survives in the file."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "master.key"
    create_keyring_file(path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        added = list(pool.map(lambda _: add_key_to_file(path), range(16)))
    assert sorted(k.version for k in added) == list(range(2, 18))
    on_disk = read_keyring_file(path)
    assert all(on_disk[k.version] == k for k in added)
