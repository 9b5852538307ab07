"""golden.safeio: sizes are checked from the headers before allocating, decompression stops at
the declared size, and what is read equals what numpy wrote."""

import tracemalloc

import numpy as np
import pytest
from hostile import npy_bytes, npy_header, weight_members, write_zip, zip_bomb_member

from golden.safeio import (MAX_ARCHIVE_BYTES, MAX_ARRAY_BYTES, ArrayReadError, BoundedNpz,
                           read_npy)
from golden.weights import WeightFileError, load_weights


@pytest.mark.parametrize("dtype", ["int8", "int64", "float32", ">i4", "<U5", "bool"])
@pytest.mark.parametrize("fortran", [False, True])
def test_reads_what_numpy_wrote(tmp_path, dtype, fortran):
    rng = np.random.default_rng(3)
    a = rng.integers(-100, 100, (3, 4, 5)).astype(dtype)
    a = np.asfortranarray(a) if fortran else a
    np.save(tmp_path / "a.npy", a)
    got = read_npy(tmp_path / "a.npy")
    assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a)
    np.savez_compressed(tmp_path / "a.npz", x=a, y=a[0], s=np.array("text"))
    with BoundedNpz(tmp_path / "a.npz") as npz:
        assert sorted(npz) == ["s", "x", "y"]
        assert np.array_equal(npz["x"], a) and np.array_equal(npz["y"], a[0])
        assert str(npz["s"]) == "text"


def test_npy_header_above_the_limit_is_refused_before_allocating(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(npy_header((16, 10**5, 10**5)) + bytes(64))
    tracemalloc.start()
    with pytest.raises(ArrayReadError, match=r"declared shape \[16, 100000, 100000\] int8 is "
                                             r"152588 MiB, above the limit of 256 MiB"):
        read_npy(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20


def test_npz_member_above_the_limit_names_key_shape_and_limit(tmp_path):
    members = weight_members()
    members["conv1/U.npy"] = npy_header((10**6, 10**6, 4, 4)) + bytes(100)
    path = write_zip(tmp_path / "w.npz", members)
    with pytest.raises(WeightFileError) as info:
        load_weights(path)
    assert info.value.key == "conv1/U"
    assert "declared shape [1000000, 1000000, 4, 4] int8" in str(info.value)
    assert f"limit of {MAX_ARRAY_BYTES // 2**20} MiB per array" in str(info.value)


def test_archive_total_limit(tmp_path):
    path = write_zip(tmp_path / "a.npz", {f"k{i}.npy": npy_header((2**20,)) + bytes(2**20)
                                          for i in range(5)})
    with BoundedNpz(path, archive_limit=3 * 2**20 + 10) as npz:
        npz["k0"], npz["k1"], npz["k2"]
        with pytest.raises(ArrayReadError, match=r"brings the archive above the limit of "
                                                 r"3 MiB in all") as info:
            npz["k3"]
    assert info.value.key == "k3"
    assert MAX_ARCHIVE_BYTES >= 4 * MAX_ARRAY_BYTES


def test_zip_bomb_with_an_honest_header_is_refused_from_the_header(tmp_path):
    members = weight_members()
    del members["conv1/U.npy"]
    path = zip_bomb_member(tmp_path / "bomb.npz", members, "conv1/U.npy",
                           npy_header((2**13, 2**12, 4, 4)), 2**26)
    with pytest.raises(WeightFileError, match=r"key 'conv1/U': declared shape "
                                              r"\[8192, 4096, 4, 4\] int8 is 512 MiB") as info:
        load_weights(path)
    assert info.value.key == "conv1/U"


def test_zip_bomb_behind_a_small_header_is_read_no_further(tmp_path):
    """A header declaring 96 bytes followed by 64 MiB of zeros: decompression stops after the
    declared bytes (and a chunk), the extra data is refused."""
    members = weight_members()
    del members["conv1/U.npy"]
    path = zip_bomb_member(tmp_path / "bomb.npz", members, "conv1/U.npy",
                           npy_header((2, 3, 4, 4)), 2**26)
    tracemalloc.start()
    with pytest.raises(WeightFileError, match=r"holds more data than its header declares"):
        load_weights(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20


def test_truncated_and_trailing_data(tmp_path):
    a = np.arange(100, dtype=np.int64)
    data = npy_bytes(a)
    (tmp_path / "short.npy").write_bytes(data[:-8])
    with pytest.raises(ArrayReadError, match=r"truncated: 792 of the 800 data bytes"):
        read_npy(tmp_path / "short.npy")
    path = write_zip(tmp_path / "long.npz", {"a.npy": data + b"x"})
    with BoundedNpz(path) as npz, pytest.raises(ArrayReadError, match="more data"):
        npz["a"]


def test_object_arrays_and_non_npy_members(tmp_path):
    (tmp_path / "o.npy").write_bytes(npy_header((2,), "|O") + b"\x80\x04N.")
    with pytest.raises(ArrayReadError, match="object arrays are not allowed"):
        read_npy(tmp_path / "o.npy")
    path = write_zip(tmp_path / "a.npz", {"notes.txt": b"hello"})
    with BoundedNpz(path) as npz:
        assert list(npz) == ["notes.txt"]
        with pytest.raises(ArrayReadError, match=r"is not a \.npy array"):
            npz["notes.txt"]
    (tmp_path / "z.npy").write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(ArrayReadError, match=r"is an \.npz archive"):
        read_npy(tmp_path / "z.npy")


def test_torch_files_checked_from_the_zip_directory(tmp_path):
    torch = pytest.importorskip("torch")
    from golden.safeio import check_torch_file
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "ok.pt")
    check_torch_file(tmp_path / "ok.pt")
    with pytest.raises(ArrayReadError, match=r"above the limit of 100 bytes in all"):
        check_torch_file(tmp_path / "ok.pt", limit=100)
    members = {"archive/data.pkl": b"\x80\x02}q\x00.", "archive/data/0": bytes(2**20)}
    write_zip(tmp_path / "bomb.pt", members, compress=True)
    with pytest.raises(ArrayReadError, match=r"is compressed") as info:
        check_torch_file(tmp_path / "bomb.pt")
    assert info.value.key == "archive/data.pkl"
    (tmp_path / "legacy.pt").write_bytes(bytes(1000))
    with pytest.raises(ArrayReadError, match=r"is 1000 bytes, above the limit of 999 bytes"):
        check_torch_file(tmp_path / "legacy.pt", limit=999)


def test_import_state_dict_refuses_a_compressed_record(tmp_path):
    pytest.importorskip("torch")
    from hostile import assert_refused, run_capped
    members = {"archive/data.pkl": b"\x80\x02}q\x00.", "archive/data/0": bytes(2**24)}
    path = write_zip(tmp_path / "bomb.pt", members, compress=True)
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    result = run_capped("train.import_state_dict", path, "--tile", "4x4", "--layout", "conv",
                        "--calibration", tmp_path / "x.npy", "--out", tmp_path / "w.npz",
                        timeout=120)
    assert_refused(result, "train.import_state_dict",
                   f"{path}: record archive/data.pkl: is compressed")
    assert not (tmp_path / "w.npz").exists()


def test_import_onnx_calibration_header_is_checked(tmp_path):
    pytest.importorskip("onnx")
    from hostile import assert_refused, run_capped
    (tmp_path / "m.onnx").write_bytes(b"not read: the calibration comes first")
    (tmp_path / "x.npy").write_bytes(npy_header((10**4, 3, 10**4, 10**4), "<f4"))
    result = run_capped("train.import_onnx", tmp_path / "m.onnx", "--tile", "4x4",
                        "--calibration", tmp_path / "x.npy", "--out", tmp_path / "w.npz",
                        timeout=120)
    assert_refused(result, "train.import_onnx", "--calibration",
                   "declared shape [10000, 3, 10000, 10000] float32")
