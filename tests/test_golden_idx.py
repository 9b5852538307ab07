"""golden.idx: IDX files written by hand and by write_idx, plain and gzip, and every refusal."""

import gzip
import struct

import numpy as np
import pytest

from golden.idx import MAX_BYTES, IdxError, read_idx, write_idx


def _raw(code: int, shape, payload: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 28, 28)), (np.uint8, (7,)),
                                         (np.int8, (3, 4)), (np.int16, (2, 3)),
                                         (np.int32, (6,)), (np.float32, (2, 2, 2)),
                                         (np.float64, (3,))])
def test_write_read_round_trip(tmp_path, name, dtype, shape):
    rng = np.random.default_rng(len(shape))
    a = (rng.integers(-100, 200, size=shape) * 1.5).astype(dtype)
    path = tmp_path / name
    write_idx(path, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == shape
    np.testing.assert_array_equal(a, b)


def test_reads_the_original_byte_layout(tmp_path):
    """Big-endian sizes and elements, written here byte by byte (independent of write_idx)."""
    payload = struct.pack(">3i", 1, -2, 70000)
    (tmp_path / "x.idx").write_bytes(_raw(0x0C, (3,), payload))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx"), [1, -2, 70000])
    (tmp_path / "y.gz").write_bytes(gzip.compress(_raw(0x08, (2, 2), bytes([0, 255, 7, 9]))))
    np.testing.assert_array_equal(read_idx(tmp_path / "y.gz"), [[0, 255], [7, 9]])


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("content,match", [
    (b"\x01\x00\x08\x01" + b"\0" * 8, "not an IDX file"),
    (b"\x00", "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown IDX element type 0x07"),
    (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated IDX header"),
    (_raw(0x08, (1000,), b"\0" * 10), r"needs 1008 bytes but the (file|uncompressed) size is 18"),
    (_raw(0x08, (4,), b"\0" * 5), r"needs 12 bytes but the (file|uncompressed) size is 13"),
    (_raw(0x08, (60000, 28, 28), b""), "needs 47040016 bytes"),
    (_raw(0x0E, (1 << 16, 1 << 16), b""), f"more than the {MAX_BYTES} read at most"),
])
def test_malformed_files_are_refused_naming_the_file(tmp_path, compress, content, match):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(IdxError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_declared_size_is_checked_against_the_gzip_trailer_before_reading(tmp_path):
    # A trailer that lies about the size: refused from the header alone.
    body = gzip.compress(_raw(0x08, (4,), b"\1\2\3\4"))
    path = tmp_path / "lie.gz"
    path.write_bytes(body[:-4] + struct.pack("<I", 100))
    with pytest.raises(IdxError, match="needs 12 bytes but the uncompressed size is 100"):
        read_idx(path)


@pytest.mark.parametrize("cut", [5, 20])
def test_truncated_or_corrupt_gzip_is_one_line(tmp_path, cut):
    body = gzip.compress(_raw(0x08, (64,), bytes(range(64))))
    path = tmp_path / "cut.gz"
    path.write_bytes(body[:-cut])
    with pytest.raises(IdxError) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_bad_arrays_to_write(tmp_path):
    with pytest.raises(IdxError, match="no such file"):
        read_idx(tmp_path / "absent.gz")
    with pytest.raises(ValueError, match="dtype must be one of"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="1 to 255 dimensions, not 0"):
        write_idx(tmp_path / "a.idx", np.uint8(3))
