#!/usr/bin/python3
"""Independent CKZ decoder, written from spec/ckz.md and schema/ckz.fbs alone by outsiders who
did not read reference/ or tools/: the walk of 7.9 (container, chains, cm, cml, level tensors;
it was levels_walk.py), on top of it the walk of 7.10 (the KeySplit predictor of 16-bit
floats, format 0.8: rules T6 0..3, T11, T12, required feature bit 7), and the walk of 7.11
(the LSTM level model, format 0.9: Header.lstm_model / lstm_model_from_parent, rules LM1-LM3
and R5, stream codec 6, required feature bit 8; the tables of 7.11.5 are read from
conformance/lstm_tables.txt, and `--check-tables` compares them with the formulas), and the
walk of 0.10 (7.9.3's moment aux levels of a link's level Weight, rule Q12, required feature
bit 9; docs/spec-walk-0.10.md), and the walk of 0.11 (7.11.7's lstm-cm stream codec 7: cm's
decisions of 7.7.2 mixed with 7.11's network, features G = bucket(j, k, 2 clip + 1), slots 0 and
2..B+1; rule LM4, the C1 conditions on codec 7, required feature bit 10; docs/spec-walk-0.11.md).

Usage:
    spec_walk.py CASES_DIR [--all] [--cases GLOB] [-v]
        decodes every case whose name contains "levels", "keysplit", "lstm" (lstm-cm too) or
        "moment-context"
        (every case with --all,
        the cases matching GLOB with --cases), compares the output with the case's expected
        files (sha256) or its expected error name, and prints one line per case and a summary.
    spec_walk.py --check-tables
        evaluates 7.11.5's formulas and compares them with conformance/lstm_tables.txt.
    spec_walk.py decode IN.ckz OUTDIR
        decodes one file (parents are searched for by content id in IN's folder) into OUTDIR,
        in the form conformance/run.py expects ("ckz: ErrorName: message" and exit 1 on error).

Standard library only. zstd frames (chunk streams, coded prologs, coded headers) go through
the `zstd` command line tool. The section 9 checks are those the level, key-split and lstm
vectors need plus the cheap ones; see docs/spec-walk.md ("Walk of 7.9", "Walk of 7.10") and
docs/spec-walk-7.11.md (the walk of 7.11).

WALK_MUT=name[,name...] (or LW_MUT / KW_MUT, the names the walks used) switches on
misreadings (mutants, for the walks only): those of 7.9, KS_MUTANTS below for 7.10,
LM_MUTANTS for 7.11, MA_MUTANTS for 7.9.3's moment aux levels (0.10) and LMC_MUTANTS for
7.11.7's lstm-cm codec (0.11; the LM_MUTANTS of the network and the mixer, shared code, apply
to codec 7 too).
"""
import fnmatch
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib

M32 = 0xFFFFFFFF
# mutants (one reading changed at a time), for the walks only: WALK_MUT=name
MUT = set(",".join(os.environ.get(v, "") for v in ("WALK_MUT", "LW_MUT", "KW_MUT")).split(",")) - {""}
KS_MUTANTS = {
    "class_exp16": "class16 = expclass of the raw 16-bit exponent field (no widening; BF16 unchanged)",
    "class_f16sub0": "F16 subnormals widened as exponent 0 (class 0) instead of 112 - z",
    "class_z1": "z = 11 - bitlength(f) (z read as 1..10 per the parenthetical)",
    "bits_msb": "bit b of stream 9 is bit 7 - (b mod 8) of its byte (MSB first)",
    "low_msb": "low's bits taken most significant first",
    "size16_invalid": "symbol size 16 rejected (only 1..15 valid)",
    "size_nolimit": "sizes 17..31 accepted (no upper bound check)",
    "no_padding": "no check of the padding bits of stream 9",
    "no_topcheck": "unused low bits of top not checked",
    "zero_lax": "a size-0 symbol with sign/top bits set accepted (treated as unchanged)",
    "key_noxor": "key16/unkey16 without the XOR for negatives (just +2^15 mod 2^16)",
    "len_LS": "symbol streams decode to L/S bytes instead of n_c",
    "neg_swap": "neg = 1 read as 'add'",
    "no_wrap": "no mod 2^16: a key sum outside 0..2^16-1 is ChunkDecodeFailed",
    "top_noshift": "lead = 2^t + top (top not shifted right by 2 - t)",
    "elem_index": "element i takes byte i of its class stream (k_i misread as i)",
    "b_floor": "B = floor(T / 8) instead of ceil",
    "t12_oneway": "T12 only checks 'KeySplit tensor => bit 7', not the converse",
    "t11_no_planes": "T11 checks the dtype only, not byte_planes",
    "t6_old": "T6 still 0..2 (predictor 3 FieldOutOfRange)",
    "bit7_unknown": "P5 with bit 7 still unknown (a 0.7 reader)",
    "class_signed": "expclass of (v >> 23) without AND 0xFF (the sign enters the class)",
    "zstd_empty_reject": "an empty symbol stream must be stored with length 0 (zstd of empty content rejected)",
    "r3_nodtype": "R3 for KeySplit compares the shape only, not the dtype",
    "class_child_dtype": "class16 of the reference computed with the other 16-bit dtype's widening",
}


class CkzError(Exception):
    def __init__(self, name, msg=""):
        super().__init__(f"{name}: {msg}")
        self.name = name


# ---------------------------------------------------------------- 3. checksums
def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# ---------------------------------------------------------------- zstd (CLI)
def zstd_decode(frame, expect_len, dict_bytes=None, err="ChunkDecodeFailed"):
    if len(frame) < 4 or frame[:4] != b"\x28\xb5\x2f\xfd":
        raise CkzError(err, "not a zstd frame")
    args = ["zstd", "-d", "-q", "-c", "--long=31", "--no-progress"]
    tmp = None
    try:
        if dict_bytes is not None:
            tmp = tempfile.NamedTemporaryFile(delete=False)
            tmp.write(dict_bytes)
            tmp.close()
            args.append("--patch-from=" + tmp.name)
        p = subprocess.run(args, input=frame, capture_output=True)
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    if p.returncode != 0:
        raise CkzError(err, "zstd: " + p.stderr.decode(errors="replace").strip())
    if len(p.stdout) != expect_len:
        raise CkzError(err, f"zstd frame decodes to {len(p.stdout)} bytes, not {expect_len}")
    return p.stdout


# ---------------------------------------------------------------- 4.1 FlatBuffers
class FB:
    def __init__(self, buf):
        self.b = buf
        self.n = len(buf)

    def need(self, pos, size, align=1):
        if pos < 0 or pos + size > self.n or pos % align:
            raise CkzError("HeaderMalformed", f"flatbuffers: {size} bytes at {pos}")

    def u(self, fmt, pos):
        size = struct.calcsize(fmt)
        self.need(pos, size, size)
        return struct.unpack_from("<" + fmt, self.b, pos)[0]


class Table:
    def __init__(self, fb, pos):
        fb.need(pos, 4, 4)
        self.fb = fb
        self.pos = pos
        soff = fb.u("i", pos)
        vt = pos - soff
        fb.need(vt, 2, 2)
        vlen = fb.u("H", vt)
        if vlen % 2:
            raise CkzError("HeaderMalformed", "odd vtable length")
        fb.need(vt, vlen)
        self.vt = vt
        self.vlen = vlen

    def slot(self, fid):
        o = 4 + 2 * fid
        if o + 2 > self.vlen:
            return 0
        return self.fb.u("H", self.vt + o)

    def scalar(self, fid, fmt, default):
        s = self.slot(fid)
        if not s:
            return default
        return self.fb.u(fmt, self.pos + s)

    def present(self, fid):
        return self.slot(fid) != 0

    def offset(self, fid, required=False):
        s = self.slot(fid)
        if not s:
            if required:
                raise CkzError("HeaderMalformed", f"required field {fid} absent")
            return None
        p = self.pos + s
        v = self.fb.u("I", p)
        if not 0 < v < 2 ** 31:
            raise CkzError("HeaderMalformed", "bad offset")
        self.fb.need(p + v, 1)
        return p + v

    def table(self, fid, required=False):
        p = self.offset(fid, required)
        return None if p is None else Table(self.fb, p)

    def vector(self, fid, esize, align8=False, required=False):
        p = self.offset(fid, required)
        if p is None:
            return None
        n = self.fb.u("I", p)
        d = p + 4
        self.fb.need(d, n * esize)
        if align8 and n and d % 8:
            raise CkzError("HeaderMalformed", "misaligned 8-byte vector")
        return d, n

    def bytes_(self, fid, required=False):
        v = self.vector(fid, 1, required=required)
        if v is None:
            return None
        d, n = v
        return bytes(self.fb.b[d:d + n])

    def string(self, fid, required=False):
        v = self.vector(fid, 1, required=required)
        if v is None:
            return None
        d, n = v
        self.fb.need(d + n, 1)
        if self.fb.b[d + n] != 0:
            raise CkzError("HeaderMalformed", "string without zero byte")
        return bytes(self.fb.b[d:d + n])

    def tables(self, fid):
        v = self.vector(fid, 4)
        if v is None:
            return []
        d, n = v
        out = []
        for i in range(n):
            e = d + 4 * i
            out.append(Table(self.fb, e + self.fb.u("I", e)))
        return out

    def structs(self, fid, fmt, size):
        v = self.vector(fid, size, align8=True)
        if v is None:
            return []
        d, n = v
        return [struct.unpack_from("<" + fmt, self.fb.b, d + size * i) for i in range(n)]

    def scalars(self, fid, fmt):
        size = struct.calcsize(fmt)
        v = self.vector(fid, size, align8=(size == 8))
        if v is None:
            return []
        d, n = v
        return [struct.unpack_from("<" + fmt, self.fb.b, d + size * i)[0] for i in range(n)]


# ---------------------------------------------------------------- header model
DSIZE = {1: 8, 2: 4, 3: 2, 4: 2, 5: 8, 6: 4, 7: 2, 8: 1, 9: 1, 10: 1}
FLOATING = (1, 2, 3, 4)
CODEBOOK_KINDS = (1, 2)
KEYSPLIT = 3
LEVEL_KINDS = (3, 4, 5)


class Quant:
    pass


class Tensor:
    pass


def f32_of_bits(u):
    return struct.unpack("<f", struct.pack("<I", u))[0]


def bits_of_f32(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def valid_utf8(b):
    try:
        b.decode("utf-8", errors="strict")
        return True
    except UnicodeDecodeError:
        return False


def check_n1(name):
    return 1 <= len(name) <= 4096 and valid_utf8(name) and b"\0" not in name


def check_n2(path):
    if not check_n1(path) or b"\\" in path or b":" in path:
        return False
    return all(c not in (b"", b".", b"..") for c in path.split(b"/"))


def parse_tensor(tb):
    t = Tensor()
    t.name = tb.string(0, required=True)
    t.dtype = tb.scalar(1, "B", 0)
    t.shape = tb.scalars(2, "Q")
    t.role = tb.scalar(3, "B", 0)
    t.owner = tb.scalar(4, "i", -1)
    t.predictor = tb.scalar(5, "B", 0)
    t.byte_planes = tb.scalar(6, "B", 0) != 0
    t.chunks = tb.structs(7, "QQQII", 32)
    qt = tb.table(8)
    t.quant = None
    if qt is not None:
        q = Quant()
        q.kind = qt.scalar(0, "B", 0)
        q.bits = qt.scalar(1, "B", 0)
        q.codebook = qt.scalars(2, "I")  # binary32 bit patterns
        q.reference_scale = qt.scalar(5, "I", 0x3F800000)
        q.step = qt.scalar(6, "I", 0)
        q.step_source = qt.scalar(7, "i", -1)
        q.step_slope = qt.scalar(8, "b", 0)
        q.step_center = qt.scalar(9, "i", 0)
        q.step_limit = qt.scalar(10, "B", 0)
        q.log_unit = qt.scalar(11, "b", 0)
        t.quant = q
    return t


def is_level(t):
    return t.quant is not None and t.quant.kind in LEVEL_KINDS


def is_codebook(t):
    return t.quant is not None and t.quant.kind in CODEBOOK_KINDS


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def f32_finite(u):
    return (u >> 23) & 0xFF != 0xFF


def f32_normal_finite_positive(x):
    """x: an exact real (Python float or int ratio) -> is it a normal finite positive binary32?"""
    return 2.0 ** -126 <= x < 2.0 ** 128


# ---------------------------------------------------------------- the file
class CkzFile:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as fh:
            self.data = fh.read()
        self.parent = None
        self.parse()

    # 2 + 9: preamble, header, static rules
    def parse(self):
        d = self.data
        L = len(d)
        magic = b"\x89CKZ\r\n\x1a\n"
        if d[:min(8, L)] != magic[:min(8, L)]:
            if L >= 4 and d[1:4] == b"CKZ":
                raise CkzError("TextModeCorruption")
            raise CkzError("BadMagic")
        if L < 64:
            raise CkzError("Truncated")
        major, minor, _r0, req, opt, hoff, hlen, hcrc = struct.unpack_from("<HHIQQQQI", d, 8)
        if major != 0:
            raise CkzError("UnsupportedVersion")
        if struct.unpack_from("<I", d, 60)[0] != crc32c(d[:60]):
            raise CkzError("PreambleChecksum")
        if req & ~(0x7F if "bit7_unknown" in MUT else 0xFF if "bit8_unknown" in MUT
                   else 0x1FF if "bit9_unknown" in MUT else 0x3FF if "bit10_unknown" in MUT
                   else 0x7FF):  # bits 0..10 known (12; 8 since 0.9, 9 since 0.10, 10 since 0.11)
            raise CkzError("UnknownRequiredFeature")
        if hlen > 2 ** 26:
            raise CkzError("HeaderTooLarge")
        if hoff < 64 or hoff > L or hlen > L - hoff:
            raise CkzError("HeaderOutOfBounds")
        if hoff % 64:
            raise CkzError("Misaligned")
        self.req = req
        hdr = d[hoff:hoff + hlen]
        if crc32c(hdr) != hcrc:
            raise CkzError("HeaderChecksum")
        if req & (1 << 5):  # H8, coded header (simplified: size from the CLI)
            if len(hdr) < 6 or hdr[:4] != b"\x28\xb5\x2f\xfd":
                raise CkzError("HeaderMalformed", "coded header is not a zstd frame")
            p = subprocess.run(["zstd", "-d", "-q", "-c"], input=hdr, capture_output=True)
            if p.returncode:
                raise CkzError("HeaderMalformed", "coded header does not decode")
            hdr = p.stdout
            if len(hdr) > 2 ** 26:
                raise CkzError("HeaderTooLarge")
        if len(hdr) < 8 or hdr[4:8] != b"CKZH":
            raise CkzError("HeaderMalformed", "no CKZH")
        fb = FB(hdr)
        if len(hdr) < 12:
            raise CkzError("HeaderMalformed")
        ro = fb.u("I", 0)
        if not 0 < ro < 2 ** 31:
            raise CkzError("HeaderMalformed")
        h = Table(fb, ro)
        self.content_id = h.bytes_(0, required=True)
        lt = h.table(2)
        self.tensors = [parse_tensor(x) for x in h.tables(3)]
        files = []
        for ft in h.tables(4):
            f = {
                "path": ft.string(0, required=True),
                "format": ft.scalar(1, "B", 0),
                "prolog": ft.bytes_(2) or b"",
                "tensors": ft.scalars(3, "I"),
                "splits": ft.scalars(4, "Q"),
                "patches": ft.structs(5, "QII", 16),
                "codec": ft.scalar(6, "B", 0),
                "raw_length": ft.scalar(7, "Q", 0),
                "crc": ft.scalar(8, "I", 0),
                "parent_file": ft.scalar(9, "I", 0),
            }
            files.append(f)
        self.files = files
        meta = []
        for mt in h.tables(5):
            key = mt.string(0, required=True)
            vtype = mt.scalar(1, "B", 0)
            mt.offset(2, required=True)
            meta.append((key, vtype))
        writer = h.string(6)
        # (0.9) 7.11: LstmModel (id 7) and lstm_model_from_parent (id 8); read here so that
        # the table is verified with the rest of the buffer (H3)
        mt7 = h.table(7)
        self.lstm_raw = None
        if mt7 is not None:
            self.lstm_raw = (mt7.scalar(0, "B", 0), mt7.scalar(1, "B", 0), mt7.scalar(2, "B", 0),
                             mt7.scalar(3, "B", 0), mt7.bytes_(4) or b"")
        self.lstm_from_parent = h.scalar(8, "B", 0) != 0
        # H4..H7
        if len(self.content_id) != 32:
            raise CkzError("FieldOutOfRange", "content_id")
        if (lt is not None) != bool(req & 1):
            raise CkzError("BadLink", "link vs bit 0")
        self.link = None
        self.depth = 0
        if lt is not None:
            pcid = lt.bytes_(0, required=True)
            hint = lt.string(2)
            depth = lt.scalar(3, "I", 0)
            if len(pcid) != 32:
                raise CkzError("FieldOutOfRange", "parent_content_id")
            if hint is not None and not check_n2(hint):
                raise CkzError("BadName", "path_hint")
            if depth < 1:
                raise CkzError("BadLink", "depth 0")
            self.link = (pcid, hint, depth)
            self.depth = depth
        if writer is not None and not valid_utf8(writer):
            raise CkzError("BadName", "writer")
        self.check_tensors()
        self.check_files()
        seen = set()
        for key, vtype in meta:
            if not check_n1(key):
                raise CkzError("BadName", "metadata key")
            if not 1 <= vtype <= 5:
                raise CkzError("FieldOutOfRange", "metadata type")
            if key in seen:
                raise CkzError("DuplicateName", "metadata key")
            seen.add(key)
        self.check_lstm()
        self.check_layout(hoff, hlen)

    def check_lstm(self):
        """Section 9, LM1-LM3 (0.9)."""
        self.lstm_model = None
        if self.lstm_raw is not None:  # LM1, in the order written
            H, clip, rs, os_, params = self.lstm_raw
            if H not in (8, 16, 24, 32):
                raise CkzError("FieldOutOfRange", "LM1 hidden")
            if not 1 <= clip <= 7:
                raise CkzError("FieldOutOfRange", "LM1 clip")
            if rs > 15:
                raise CkzError("FieldOutOfRange", "LM1 recur_shift")
            if not 2 <= os_ <= 15:
                raise CkzError("FieldOutOfRange", "LM1 out_shift")
            if len(params) != lstm_params_length(H, clip):
                raise CkzError("FieldOutOfRange", f"LM1 params: {len(params)} bytes, not "
                                                  f"{lstm_params_length(H, clip)}")
            m = LstmModel(H, clip, rs, os_, params)
            if "lm1_nomix" not in MUT:
                for v in m.mix_flat:
                    if not -2 ** 20 <= v <= 2 ** 20:
                        raise CkzError("FieldOutOfRange", "LM1 mix_init")
            self.lstm_model = m
        # LM2
        if "lm2_order" in MUT:
            if self.lstm_from_parent and self.lstm_raw is not None:
                raise CkzError("FieldOutOfRange", "LM2 both")
        if self.lstm_from_parent and self.link is None:
            raise CkzError("BadLink", "LM2 lstm_model_from_parent in a keyframe")
        if self.lstm_from_parent and self.lstm_raw is not None:
            raise CkzError("FieldOutOfRange", "LM2 lstm_model and lstm_model_from_parent")
        # LM3
        has = self.lstm_raw is not None or self.lstm_from_parent
        if "lm3_oneway" in MUT:
            if has and not self.req & 256:
                raise CkzError("FieldOutOfRange", "LM3")
        elif bool(self.req & 256) != has:
            raise CkzError("FieldOutOfRange", "LM3 required feature bit 8")
        # LM4 (0.11): bit 10 only with bit 8 (one way: bit 10 is not required by a codec-7 chunk
        # here; C1 checks that, chunk by chunk)
        if self.req & 1024 and not self.req & 256 and "lm4_off" not in MUT:
            raise CkzError("FieldOutOfRange", "LM4 required feature bit 10 without bit 8")

    def check_tensors(self):
        L = len(self.data)
        names = set()
        N = len(self.tensors)
        for i, t in enumerate(self.tensors):
            if not check_n1(t.name):
                raise CkzError("BadName", "tensor name")
            if not 1 <= t.dtype <= 10:
                raise CkzError("FieldOutOfRange", "dtype")
            if len(t.shape) > 32:
                raise CkzError("ShapeOverflow")
            w = DSIZE[t.dtype]
            if 0 in t.shape:
                nbytes = 0
            else:
                p = w
                for dim in t.shape:
                    p *= dim
                    if p >= 2 ** 63:
                        raise CkzError("ShapeOverflow")
                nbytes = p
            t.nbytes = nbytes
            t.w = w
            if t.role > 3:
                raise CkzError("FieldOutOfRange", "role")
            if t.predictor > (2 if "t6_old" in MUT else 3):  # T6 (3 KeySplit since 0.8)
                raise CkzError("FieldOutOfRange", "predictor")
            if t.predictor and self.link is None:  # T7
                raise CkzError("BadLink", "predictor without link")
            if t.predictor == KEYSPLIT and (t.dtype not in (3, 4) or
                                            (t.byte_planes and "t11_no_planes" not in MUT)):
                raise CkzError("FieldOutOfRange", "T11 KeySplit needs F16/BF16 without byte planes")
            if t.quant is not None:
                self.check_quant(t)
            off = 0
            for (co, cs, cr, crc, res) in t.chunks:
                if res:
                    raise CkzError("NonzeroPadding", "chunk reserved")
                if not 1 <= cr <= 2 ** 26 or cr % w:
                    raise CkzError("ChunkLayout")
                if cs < 1:
                    raise CkzError("ChunkLayout")
                if co % 64:
                    raise CkzError("Misaligned")
                if co > L or cs > L - co:
                    raise CkzError("RangeOutOfFile")
                if off + cr > nbytes:
                    raise CkzError("ChunkLayout")
                off += cr
            if off != nbytes:
                raise CkzError("ChunkLayout")
            if t.name in names:
                raise CkzError("DuplicateName", "tensor")
            names.add(t.name)
        for i, t in enumerate(self.tensors):  # O1
            if t.owner != -1:
                o = t.owner
                if not (0 <= o < N and o != i and t.role in (2, 3)
                        and self.tensors[o].role == 1 and self.tensors[o].shape == t.shape):
                    raise CkzError("BadOwner")
        for i, t in enumerate(self.tensors):  # Q10
            q = t.quant
            if q is not None and q.kind in LEVEL_KINDS and q.step_source != -1:
                s = q.step_source
                if not (s < N and s != i and self.tensors[s].dtype in FLOATING
                        and self.tensors[s].shape == t.shape):
                    raise CkzError("FieldOutOfRange", "Q10 step_source")
        anyq = any(t.quant is not None for t in self.tensors)
        if bool(self.req & 2) != anyq:
            raise CkzError("FieldOutOfRange", "Q1")
        anyl = any(is_level(t) for t in self.tensors)
        if bool(self.req & 64) != anyl:
            raise CkzError("FieldOutOfRange", "Q11")
        anyk = any(t.predictor == KEYSPLIT for t in self.tensors)  # T12
        if "t12_oneway" in MUT:
            if anyk and not self.req & 128:
                raise CkzError("FieldOutOfRange", "T12")
        elif bool(self.req & 128) != anyk:
            raise CkzError("FieldOutOfRange", "T12")
        # Q12 (0.10, section 9, right after T12): required feature bit 9 is set only in a link
        # (bit 0) some tensor of which has a level kind (bit 6). "only": a one-way rule; a link
        # with levels may leave the bit clear (12's history: 0.9's contexts, without the bit).
        if self.req & 512 and not (self.link is not None and anyl) and "q12_off" not in MUT:
            raise CkzError("FieldOutOfRange", "Q12 required feature bit 9")

    def check_quant(self, t):
        q = t.quant
        if not 1 <= q.kind <= 5:
            raise CkzError("FieldOutOfRange", "Q2 kind")
        if q.kind in CODEBOOK_KINDS:
            if not 1 <= q.bits <= 8:
                raise CkzError("FieldOutOfRange", "Q3")
            K = len(q.codebook)
            if not 1 <= K <= 2 ** q.bits - 1 or not all(f32_finite(c) for c in q.codebook):
                raise CkzError("FieldOutOfRange", "Q4 codebook")
            if (q.step != 0 or q.step_source != -1 or q.step_slope or q.step_center
                    or q.step_limit or q.log_unit):
                raise CkzError("FieldOutOfRange", "Q4 level fields")
        else:  # Q9
            if q.bits != 0 or q.codebook:
                raise CkzError("FieldOutOfRange", "Q9 bits/codebook")
            if q.step_limit > 32:
                raise CkzError("FieldOutOfRange", "Q9 step_limit")
            st = f32_of_bits(q.step)
            if not (f32_finite(q.step) and st > 0 and (q.step >> 31) == 0):
                raise CkzError("FieldOutOfRange", "Q9 step")
            for s in (-q.step_limit, q.step_limit):
                if not f32_normal_finite_positive(math.ldexp(st, s)):
                    raise CkzError("FieldOutOfRange", "Q9 step range")
            if q.kind == 5:
                if not -4 <= q.log_unit <= 4:
                    raise CkzError("FieldOutOfRange", "Q9 log_unit")
            elif q.log_unit != 0:
                raise CkzError("FieldOutOfRange", "Q9 log_unit")
            if q.step_source < -1:
                raise CkzError("FieldOutOfRange", "Q9 step_source")
            if q.step_source == -1:
                if q.step_slope or q.step_center or q.step_limit:
                    raise CkzError("FieldOutOfRange", "Q9 without source")
            elif q.step_slope not in (1, -1):
                raise CkzError("FieldOutOfRange", "Q9 slope")
            if not -1100 <= q.step_center <= 1100:
                raise CkzError("FieldOutOfRange", "Q9 center")
        if t.dtype not in FLOATING:
            raise CkzError("FieldOutOfRange", "Q5")
        if t.predictor != 0 or t.byte_planes:
            raise CkzError("FieldOutOfRange", "Q6")
        if self.link is None and (q.kind in (1, 3, 5) or
                                  (q.kind in LEVEL_KINDS and q.step_source != -1)):
            raise CkzError("BadLink", "Q7")
        g = q.reference_scale
        if not (f32_finite(g) and (g >> 31) == 0 and g & 0x7FFFFFFF):
            raise CkzError("FieldOutOfRange", "Q8")
        if q.kind in (2, 4) and g != 0x3F800000:
            raise CkzError("FieldOutOfRange", "Q8 direct scale")

    def check_files(self):
        N = len(self.tensors)
        listed = set()
        paths = set()
        for f in self.files:
            if not check_n2(f["path"]):
                raise CkzError("BadName", "path")
            if f["format"] > 2:
                raise CkzError("FieldOutOfRange", "format")
            c = f["codec"]
            if c > 2:
                raise CkzError("FieldOutOfRange", "F9")
            if c == 0 and (f["raw_length"] or f["crc"] or f["parent_file"]):
                raise CkzError("FieldOutOfRange", "F9")
            if c == 1 and f["parent_file"]:
                raise CkzError("FieldOutOfRange", "F9")
            if c and not (1 <= f["raw_length"] <= 2 ** 30 and f["prolog"]):
                raise CkzError("FieldOutOfRange", "F9")
            if c == 2 and self.link is None:
                raise CkzError("BadLink", "F10")
            if f["format"] == 0 and f["tensors"]:
                raise CkzError("FieldOutOfRange", "F3")
            for k in f["tensors"]:
                if k >= N or k in listed:
                    raise CkzError("FieldOutOfRange", "F4")
                listed.add(k)
            plen = f["raw_length"] if c else len(f["prolog"])
            sp = f["splits"]
            if sp:
                if len(sp) != len(f["tensors"]):
                    raise CkzError("FieldOutOfRange", "F5")
                prev = 0
                for s in sp:
                    if s > plen or s < prev:
                        raise CkzError("FieldOutOfRange", "F5")
                    prev = s
            prevq = None
            for (q, k, res) in f["patches"]:
                if res:
                    raise CkzError("NonzeroPadding", "F6")
                if k >= len(f["tensors"]) or q + 4 > plen or (prevq is not None and q < prevq + 4):
                    raise CkzError("FieldOutOfRange", "F6")
                prevq = q
            if f["path"] in paths:
                raise CkzError("DuplicateName", "path")
            paths.add(f["path"])
        if self.files and len(listed) != N:
            raise CkzError("FieldOutOfRange", "F8")
        if bool(self.req & 8) != any(f["codec"] for f in self.files):
            raise CkzError("FieldOutOfRange", "F11")

    def check_layout(self, hoff, hlen):
        regions = [(0, 64), (hoff, hlen)]
        for t in self.tensors:
            for c in t.chunks:
                regions.append((c[0], c[1]))
        regions.sort()
        d = self.data
        for (a, al), (b, bl) in zip(regions, regions[1:]):
            end = a + al
            if b < end:
                raise CkzError("RangeOverlap")
            if b != (end + 63) // 64 * 64:
                raise CkzError("UnexplainedBytes")
            if any(d[end:b]):
                raise CkzError("NonzeroPadding")
        last = regions[-1]
        if last[0] + last[1] != len(d):
            raise CkzError("UnexplainedBytes")

    def find(self, name):
        for i, t in enumerate(self.tensors):
            if t.name == name:
                return i
        return None


# ---------------------------------------------------------------- 10.2 chains
def open_chain(path):
    top = CkzFile(path)
    folder = os.path.dirname(os.path.abspath(path))
    cands = None
    f = top
    while f.link is not None:
        if cands is None:
            cands = []
            for n in sorted(os.listdir(folder)):
                if n.endswith(".ckz"):
                    p = os.path.join(folder, n)
                    try:
                        cands.append(CkzFile(p) if os.path.abspath(p) != os.path.abspath(path) else top)
                    except CkzError:
                        pass
        pcid, hint, depth = f.link
        found = [c for c in cands if c.content_id == pcid]
        if not found:
            raise CkzError("ParentNotFound")
        par = found[0]
        if par.depth != depth - 1:
            raise CkzError("BadChain")
        f.parent = par
        f = par
    # R5 (0.9, 10.2): after R1 and R2, whether or not a chunk uses codec 6; for every file of
    # the chain with lstm_model_from_parent (the walk's reading: every file opened)
    f = top if "r5_lazy" not in MUT else None
    while f is not None:
        if f.lstm_from_parent and ("r5_top_only" not in MUT or f is top):
            if resolve_model(f) is None:
                raise CkzError("ReferenceMismatch", "R5: no LSTM model up the chain")
        f = f.parent
    return top


def resolve_model(F):
    """10.2 (0.9): the file's model, its own or (lstm_model_from_parent) its parent's, ...;
    None when some file on the way has neither (R5) or the parent is not there."""
    while F is not None:
        if F.lstm_model is not None:
            return F.lstm_model
        if not F.lstm_from_parent:
            return None
        F = F.parent
    return None


# ---------------------------------------------------------------- 7.7.1 range decoder
class RangeDecoder:
    def __init__(self, b):
        self.b = b
        self.n = len(b)
        self.pos = 0
        self.range = 0xFFFFFFFF
        self.code = 0
        for _ in range(4):
            self.code = ((self.code << 8) | self.next()) & M32

    def next(self):
        p = self.pos
        self.pos = p + 1
        return self.b[p] if p < self.n else 0

    def bit(self, P, N, i):
        p = P[i]
        bound = (self.range >> 16) * p
        if self.code < bound:
            self.range = bound
            bit = 0
            r = 65536 // (N[i] + 2)
            P[i] = p + (((65536 - p) * r) >> 16)
        else:
            self.code -= bound
            self.range -= bound
            bit = 1
            r = 65536 // (N[i] + 2)
            P[i] = p - ((p * r) >> 16)
        if N[i] < 30:
            N[i] += 1
        while self.range < (1 << 24):
            self.range = (self.range << 8) & M32
            self.code = ((self.code << 8) | self.next()) & M32
        return bit

    def bit_at(self, p0):
        """7.7.1's decode_bit at probability p0 (1..65535), updating no state (7.11.4)."""
        bound = (self.range >> 16) * p0
        if self.code < bound:
            self.range = bound
            bit = 0
        else:
            self.code -= bound
            self.range -= bound
            bit = 1
        while self.range < (1 << 24):
            self.range = (self.range << 8) & M32
            self.code = ((self.code << 8) | self.next()) & M32
        return bit

    def direct(self):  # 7.8.1
        self.range >>= 1
        if self.code >= self.range:
            self.code -= self.range
            bit = 1
        else:
            bit = 0
        if self.range < (1 << 24):
            self.range = (self.range << 8) & M32
            self.code = ((self.code << 8) | self.next()) & M32
        return bit

    def directn(self, n):
        v = 0
        for i in range(n):
            if "direct_lsb" in MUT:
                v |= self.direct() << i
            else:
                v = 2 * v + self.direct()
        return v

    def finish(self):
        if "finish_nocode" in MUT:
            self.code = 0
        if "finish_nolen" in MUT:
            self.pos = self.n
        if not (self.code < self.range and self.n <= self.pos):
            raise CkzError("ChunkDecodeFailed", "finish")


def states(n):
    return [32768] * n, [0] * n


# ---------------------------------------------------------------- decoding
class Decoder:
    def __init__(self, top):
        self.top = top
        self.cache_idx = {}
        self.cache_lvl = {}
        self.cache_bytes = {}

    # ---- streams
    def chunk_info(self, F, ti, j):
        t = F.tensors[ti]
        raw_off = sum(c[2] for c in t.chunks[:j])
        co, cs, cr, crc, _ = t.chunks[j]
        return raw_off, co, cs, cr, crc

    def directory(self, F, ti, j):
        """7.1 (C1). Returns [(codec, bytes)]."""
        t = F.tensors[ti]
        _, co, cs, cr, _ = self.chunk_info(F, ti, j)
        C = F.data[co:co + cs]
        if t.predictor == KEYSPLIT:
            S = 10
        else:
            S = t.w if t.byte_planes else 1
        if cs < 5 * S:
            raise CkzError("ChunkMalformed", "short directory")
        ents = []
        pos = 5 * S
        for s in range(S):
            codec, ln = struct.unpack_from("<BI", C, 5 * s)
            ents.append((codec, C[pos:pos + ln]))
            pos += ln
            if t.predictor == KEYSPLIT:
                ok = codec in (0, 1)
            elif is_level(t):
                ok = codec == 5 or (codec == 6 and (F.req & 256 or "c1_nobit8" in MUT)) \
                    or (codec == 7 and "c1_codec7_levels" in MUT)
            elif is_codebook(t):
                ok = codec in (0, 1, 2) or (codec == 3 and F.req & 4) \
                    or (codec == 7 and (F.req & 1024 or "c1_nobit10" in MUT)
                        and (F.req & 4 or "c1_codec7_bit2" not in MUT))
            else:
                ok = codec in (0, 1) or (codec == 4 and t.dtype == 2 and not t.byte_planes
                                         and F.req & 16)
            if not ok:
                raise CkzError("ChunkMalformed", f"codec {codec}")
        if pos != cs:
            raise CkzError("ChunkMalformed", "stream lengths")
        return ents

    def plain_stream(self, codec, b, n):
        if codec == 0:
            if len(b) != n:
                raise CkzError("ChunkDecodeFailed", "stored length")
            return b
        if codec == 1:
            return zstd_decode(b, n)
        raise CkzError("ChunkDecodeFailed", "codec")

    # ---- parent / aux lookups
    def need_parent(self, F):
        if F.parent is None:
            raise CkzError("ReferenceRequired")
        return F.parent

    def reference(self, F, ti):
        """10.2 / 7.6: the reference tensor index in the parent (R3)."""
        P = self.need_parent(F)
        t = F.tensors[ti]
        pi = P.find(t.name)
        if pi is None or P.tensors[pi].dtype != t.dtype or P.tensors[pi].shape != t.shape:
            raise CkzError("ReferenceMismatch", t.name.decode())
        return P, pi

    def aux_tensor(self, F, ti, family):
        """7.7.2's aux rule; family: is_codebook or is_level ("quantized" read per family)."""
        t = F.tensors[ti]
        if t.role not in (2, 3) or t.owner == -1 or not family(t):
            return None
        o = t.owner
        if t.role == 2:
            return o if family(F.tensors[o]) else None
        m1 = [k for k, u in enumerate(F.tensors) if u.role == 2 and u.owner == o and family(u)]
        if "m2_owner" in MUT:
            m1 = []
        if len(m1) == 1:
            return m1[0]
        return o if family(F.tensors[o]) else None

    # ---- ranges of indices / levels / bytes over another tensor's chunks
    def elem_range(self, F, ti, first, count, getter):
        t = F.tensors[ti]
        out = []
        off = 0
        for j, c in enumerate(t.chunks):
            e0 = off // t.w
            e1 = (off + c[2]) // t.w
            off += c[2]
            if e1 <= first or e0 >= first + count:
                continue
            vals = getter(F, ti, j)
            lo = max(first, e0)
            hi = min(first + count, e1)
            out.extend(vals[lo - e0:hi - e0])
        assert len(out) == count
        return out

    def byte_range(self, F, ti, a, n):
        t = F.tensors[ti]
        out = bytearray()
        off = 0
        for j, c in enumerate(t.chunks):
            lo, hi = off, off + c[2]
            off = hi
            if hi <= a or lo >= a + n:
                continue
            b = self.chunk_bytes(F, ti, j)
            out += b[max(a, lo) - lo:min(a + n, hi) - lo]
        return bytes(out)

    # ---- 7.6 / 7.7: indices
    def indices(self, F, ti, j):
        key = (id(F), ti, j)
        if key in self.cache_idx:
            return self.cache_idx[key]
        t = F.tensors[ti]
        raw_off, co, cs, cr, crc = self.chunk_info(F, ti, j)
        E = cr // t.w
        (codec, b), = self.directory(F, ti, j)
        K = len(t.quant.codebook)
        if codec == 2:
            n = t.quant.bits
            if len(b) != (E * n + 7) // 8:
                raise CkzError("ChunkDecodeFailed", "packed length")
            v = int.from_bytes(b, "little")
            if v >> (E * n):
                raise CkzError("ChunkDecodeFailed", "packed padding")
            idx = [(v >> (i * n)) & ((1 << n) - 1) for i in range(E)]
        elif codec == 3:
            idx = self.cm_decode(F, ti, raw_off // t.w, E, b)
        elif codec == 7:  # (0.11) 7.11.7
            idx = self.cm_decode(F, ti, raw_off // t.w, E, b, lstm=True)
        else:
            idx = list(self.plain_stream(codec, b, E))
        for i, x in enumerate(idx):
            if x > K:
                raise CkzError("CodebookIndex", f"element {raw_off // t.w + i}")
        self.cache_idx[key] = idx
        return idx

    def cm_decode(self, F, ti, f, E, b, lstm=False):
        """7.7.2 (codec 3), or with lstm (codec 7, 0.11) 7.11.7: the same decisions, each mixed
        (7.11.4) with the network of the model of the file F that holds the chunk."""
        t = F.tensors[ti]
        K = len(t.quant.codebook)
        R = t.shape[-1] if len(t.shape) >= 2 else 0
        Pi = KP = None
        if F.link is not None:
            Pf = self.need_parent(F)
            pi = Pf.find(t.name)
            if pi is not None:
                pt = Pf.tensors[pi]
                if pt.dtype == t.dtype and pt.shape == t.shape and pt.quant is not None:
                    # "quantized (either kind)" read as: a codebook kind (7.9.3's note)
                    if is_codebook(pt):
                        Pi = self.elem_range(Pf, pi, f, E, self.indices)
                        KP = len(pt.quant.codebook)
        Ai = KA = None
        ai = self.aux_tensor(F, ti, is_codebook)
        if ai is not None:
            Ai = self.elem_range(F, ai, f, E, self.indices)
            KA = len(F.tensors[ai].quant.codebook)
        B = 0
        while (1 << B) < K:
            B += 1
        rc = RangeDecoder(b)
        SP, SN = states(45)
        VP, VN = states(64 * (1 << B))

        def bucket(j, k, m):
            return 0 if j == 0 else 1 + ((j - 1) * (m - 1)) // k

        net = None
        if lstm:
            # 7.11.7: "The model is the file's, as for codec 6" (LM3, LM4, C1 and R5 leave a model)
            model = resolve_model(self.top if "model_top" in MUT else F)
            if model is None:  # not reachable after LM3, LM4, C1 and R5; the spec names no error
                raise CkzError("ReferenceMismatch", "no LSTM model")
            net = LstmNet(model, t.role, rc)
            clip = model.clip
            nv = 2 * clip + 1  # G's buckets (0 .. 2 clip); absent = 2 clip + 1
            absent = 0 if "lmc_absent_as_zero" in MUT else clip if "lmc_absent_clip" in MUT \
                else 2 * clip + 1

            def G(j, k):
                if j is None:
                    return absent
                if "lmc_feat_clip" in MUT:  # 7.11.2's F on the index: clamp(j, -clip, clip) + clip
                    return _clamp(j, -clip, clip) + clip
                if "lmc_feat_min" in MUT:  # the index itself, clipped to 2 clip
                    return min(j, 2 * clip)
                return bucket(j, K if "lmc_bucket_K" in MUT else k, 4 if "lmc_bucket4" in MUT else nv)

            def dec(Pst, Nst, idx, s):
                return net.mixed(Pst, Nst, idx, s)
        else:
            def dec(Pst, Nst, idx, s):
                return rc.bit(Pst, Nst, idx)

        out = []
        pending = None  # lmc_step_after: the features of the previous index
        for i in range(E):
            c = (f + i) % R if R else 0
            left = out[i - 1] if i >= 1 and (R == 0 or c != 0) else None
            up = out[i - R] if R and i >= R else None
            upl = out[i - R - 1] if R and i >= R + 1 and c != 0 else None
            upr = out[i - R + 1] if R and i >= R and c + 1 < R else None
            nbr = sum(1 for x in (left, up, upl, upr) if x)
            pc = 0 if Pi is None else 1 + (Pi[i] != 0)
            ac = 0 if Ai is None else 1 + (Ai[i] != 0)
            if net is not None:  # 7.11.7: one step before every index, a zero index too
                lf = out[i - 1] if "lmc_left_rows" in MUT and i >= 1 else left
                x = [G(lf, K), G(up, K), G(None if Pi is None else Pi[i], KP),
                     G(None if Ai is None else Ai[i], KA)]
                if "lmc_pa_swap" in MUT:
                    x[2], x[3] = x[3], x[2]
                if "lmc_step_after" in MUT:
                    if pending is not None:
                        net.step(pending)
                    pending = x
                elif "lmc_step_nonzero_only" not in MUT:
                    net.step(x)
            if "lmc_sig_unmixed" in MUT and net is not None:
                nz = rc.bit(SP, SN, (pc * 5 + nbr) * 3 + ac)
            else:
                nz = dec(SP, SN, (pc * 5 + nbr) * 3 + ac, 0)
            if nz == 0:
                out.append(0)
                continue
            if net is not None and "lmc_step_nonzero_only" in MUT:
                net.step(x)
            ab = 0 if Ai is None else bucket(Ai[i], KA, 4)
            pb = 0 if Pi is None else bucket(Pi[i], KP, 4)
            lb = bucket(left, K, 4) if left is not None else 0
            ctx = (ab * 4 + pb) * 4 + lb
            node = 1
            for d in range(B):
                if "lmc_slot_lsb" in MUT:  # slots counted from the least significant tree bit
                    s = 2 + (B - 1 - d)
                elif "lmc_slot_from1" in MUT:  # slots 1 .. B (slot 1 read as the first free one)
                    s = 1 + d
                elif "lmc_slot_one" in MUT:  # every tree bit in one slot (2)
                    s = 2
                elif "lmc_slot_node" in MUT:  # slot = the tree node, capped at 15
                    s = min(node, 15)
                else:
                    s = 2 + d
                node = 2 * node + dec(VP, VN, ctx * (1 << B) + node, s)
            jv = node - (1 << B) + 1
            if jv > K:
                raise CkzError("CodebookIndex", f"element {f + i}")
            out.append(jv)
        rc.finish()
        return out

    # ---- 7.9.3: levels (steps 2-6 of 7.9.4)
    def levels(self, F, ti, j):
        key = (id(F), ti, j)
        if key in self.cache_lvl:
            return self.cache_lvl[key]
        t = F.tensors[ti]
        raw_off, co, cs, cr, crc = self.chunk_info(F, ti, j)
        E = cr // t.w
        f = raw_off // t.w
        (codec, b), = self.directory(F, ti, j)  # step 2 (C1)
        Pl = None
        if F.link is not None:  # step 3
            Pf = self.need_parent(F)
            pi = Pf.find(t.name)
            if pi is not None:
                pt = Pf.tensors[pi]
                if (pt.dtype == t.dtype or "parent_nodtype" in MUT) and pt.shape == t.shape and (is_level(pt) or ("parent_anyq" in MUT and pt.quant is not None)) and "no_parent" not in MUT:
                    Pl = self.elem_range(Pf, pi, f, E, self.levels)
        Al = None
        ai = self.aux_tensor(F, ti, is_level if "aux_anyq" not in MUT else (lambda u: u.quant is not None))  # step 4
        if ai is not None:
            Al = self.elem_range(F, ai, f, E, self.levels)
        elif t.role == 1 and F.link is not None and F.req & 512 and "mom_aux_off" not in MUT:
            Al = self.moment_aux_levels(F, ti, f, E)  # (0.10) still step 4
        if codec == 6:  # 7.11.6: after step 4, the model
            model = resolve_model(self.top if "model_top" in MUT else F)
            if model is None:
                if F.lstm_from_parent and F.parent is None:
                    raise CkzError("ReferenceRequired", "lstm_model_from_parent without the parent")
                # not reachable after LM3 + C1 + R5; the spec names no error here
                raise CkzError("ReferenceMismatch", "no LSTM model")
            out = lstm_decode(b, E, f, t.shape, Pl, Al, model, t.role)  # steps 5, 6
        else:
            out = self.cml_decode(b, E, f, t.shape, Pl, Al)  # steps 5, 6
        self.cache_lvl[key] = out
        return out

    def moment_aux_levels(self, F, ti, f, E):
        """7.9.3, "Moment aux levels" (0.10, required feature bit 9): a level Weight T of a link
        takes as aux levels the parent's levels of the tensor named as M, M = the only tensor of
        T's file with role Moment1 and owner T (whatever its quantization), when the parent has
        a tensor of that name with M's dtype and shape and a level kind; else None (no aux
        levels). Decoded like parent levels: with the parent's own parent, aux and model."""
        ms = [k for k, u in enumerate(F.tensors) if u.role == 2 and u.owner == ti]
        if len(ms) != 1:
            return None
        M = F.tensors[ms[0]]
        if "mom_aux_self" in MUT:  # this file's M instead of the parent's
            return self.elem_range(F, ms[0], f, E, self.levels) if is_level(M) else None
        Pf = self.need_parent(F)
        pi = Pf.find(M.name)
        if pi is None:
            return None
        pt = Pf.tensors[pi]
        if pt.dtype != M.dtype or pt.shape != M.shape or not is_level(pt):
            return None
        return self.elem_range(Pf, pi, f, E, self.levels)

    @staticmethod
    def cml_decode(b, E, f, shape, Pl, Al):
        R = shape[-1] if len(shape) >= 2 else 0
        if "r1d" in MUT and len(shape) == 1:
            R = shape[0]
        rc = RangeDecoder(b)
        ZP, ZN = states(27)
        SP, SN = states(27)
        UP, UN = states(4 * 14)
        EP, EN = states(24)

        def sgn(v):
            return 0 if not v else (1 if v > 0 else 2)

        out = []
        for i in range(E):
            c = (f + i) % R if R else 0
            left = out[i - 1] if i >= 1 and (R == 0 or c != 0 or "left_rows" in MUT) else 0
            up = out[i - R] if R and i >= R and "no_up" not in MUT else 0
            nb = (left != 0) + (up != 0)
            p = Pl[i] if Pl is not None else 0
            a_ = Al[i] if Al is not None else 0
            pc = 0 if Pl is None else 1 + (p != 0)
            ac = 0 if Al is None else 1 + (a_ != 0)
            if rc.bit(ZP, ZN, (pc * 3 + nb) * 3 + ac) == 0:
                out.append(0)
                continue
            neg = rc.bit(SP, SN, (sgn(p) * 3 + sgn(a_)) * 3 + sgn(left) if "sign_order" not in MUT
                         else (sgn(a_) * 3 + sgn(p)) * 3 + sgn(left))
            a = abs(left) + abs(up) + 2 * abs(p)
            if "a_noweight" in MUT:
                a = abs(left) + abs(up) + abs(p)
            mc = 0 if a == 0 else 1 if a <= 2 else 2 if a <= 6 else 3
            if "mc_thresh" in MUT:
                mc = 0 if a == 0 else 1 if a <= 1 else 2 if a <= 3 else 3
            m = 1
            while m <= 14 and rc.bit(UP, UN, (mc if "unary_one" not in MUT else 0) * 14 + m - 1) == 1:
                m += 1
            if m == 15:
                k = 0
                while k < 40 and rc.bit(EP, EN, min(k, 23)) == 1:
                    k += 1
                    if k > 23 and "esc_nolimit" not in MUT:
                        raise CkzError("ChunkDecodeFailed", f"escape prefix, element {f + i}")
                m = 15 + (1 << k) - 1 + rc.directn(k)
                if "esc_off1" in MUT:
                    m += 1
                if m > 2 ** 24 - 1:
                    raise CkzError("ChunkDecodeFailed", f"level beyond 2^24-1, element {f + i}")
            out.append(-m if neg else m)
        rc.finish()
        return out

    # ---- chunk bytes (with C5)
    def chunk_bytes(self, F, ti, j):
        key = (id(F), ti, j)
        if key in self.cache_bytes:
            return self.cache_bytes[key]
        t = F.tensors[ti]
        raw_off, co, cs, cr, crc = self.chunk_info(F, ti, j)
        if is_level(t):
            X = self.level_chunk(F, ti, j)
        elif is_codebook(t):
            X = self.codebook_chunk(F, ti, j)
        elif t.predictor == KEYSPLIT:
            X = self.keysplit_chunk(F, ti, j)
        else:
            X = self.lossless_chunk(F, ti, j)
        if crc32c(X) != crc:
            raise CkzError("ChunkChecksum", f"{t.name.decode()} chunk {j}")
        self.cache_bytes[key] = X
        return X

    def lossless_chunk(self, F, ti, j):
        t = F.tensors[ti]
        raw_off, co, cs, cr, crc = self.chunk_info(F, ti, j)
        w = t.w
        E = cr // w
        ref = None
        if t.predictor:
            P, pi = self.reference(F, ti)
            ref = self.byte_range(P, pi, raw_off, cr)
        ents = self.directory(F, ti, j)
        if ents[0][0] == 4:
            raise CkzError("Unsupported", "cmf not implemented in this walk decoder")
        S = len(ents)
        D = b"".join(self.plain_stream(c, b, cr // S) for c, b in ents)
        if t.byte_planes:
            Z = bytearray(cr)
            for p in range(w):
                Z[p::w] = D[p * E:(p + 1) * E]
            Z = bytes(Z)
        else:
            Z = D
        if not t.predictor:
            return Z
        out = bytearray()
        mod = 1 << (8 * w)
        for i in range(E):
            z = int.from_bytes(Z[i * w:(i + 1) * w], "little")
            r = int.from_bytes(ref[i * w:(i + 1) * w], "little")
            if t.predictor == 1:
                x = z ^ r
            else:
                d = ((z >> 1) ^ (-(z & 1))) % mod
                x = (r + d) % mod
            out += x.to_bytes(w, "little")
        return bytes(out)

    # ---- 7.10: KeySplit
    def keysplit_chunk(self, F, ti, j):
        t = F.tensors[ti]
        raw_off, co, cs, cr, crc = self.chunk_info(F, ti, j)
        E = cr // 2
        # 7.10.1 step 1: reference (ReferenceRequired, R3, the reference's own errors)
        if "r3_nodtype" in MUT:
            P = self.need_parent(F)
            pi = P.find(t.name)
            if pi is None or P.tensors[pi].shape != t.shape:
                raise CkzError("ReferenceMismatch", t.name.decode())
        else:
            P, pi = self.reference(F, ti)
        ref = self.byte_range(P, pi, raw_off, cr)
        r = [ref[2 * i] | (ref[2 * i + 1] << 8) for i in range(E)]
        cls = [class16((7 - t.dtype) if "class_child_dtype" in MUT else t.dtype, u) for u in r]
        # step 2: C1
        ents = self.directory(F, ti, j)
        # 7.10 step 1: counts; step 3 of 7.10.1: streams 0..8 against n_c
        n = [0] * 9
        for c in cls:
            n[c] += 1
        streams = []
        for c in range(9):
            codec, b = ents[c]
            want = cr // 10 if "len_LS" in MUT else n[c]
            if "zstd_empty_reject" in MUT and want == 0 and codec != 0:
                raise CkzError("ChunkDecodeFailed", "empty stream not stored")
            streams.append(self.plain_stream(codec, b, want))
        # 7.10 step 2 / 3: symbols in element order, validity (7.10.1 step 4)
        k = [0] * 9
        syms = []
        T = 0
        for i in range(E):
            c = cls[i]
            idx = i if "elem_index" in MUT else k[c]
            k[c] += 1
            if idx >= len(streams[c]):  # only reachable with mutants len_LS / elem_index
                raise CkzError("ChunkDecodeFailed", f"symbol stream {c} exhausted")
            s = streams[c][idx]
            size, neg, top = s >> 3, (s >> 2) & 1, s & 3
            if size == 0:
                if s != 0 and "zero_lax" not in MUT:
                    raise CkzError("ChunkDecodeFailed", f"symbol, element {raw_off // 2 + i}")
                syms.append(None)
                continue
            tt = min(size - 1, 2)
            rest = size - 1 - tt
            maxsize = 15 if "size16_invalid" in MUT else (31 if "size_nolimit" in MUT else 16)
            ok = size <= maxsize and (top & ((1 << (2 - tt)) - 1) == 0 or "no_topcheck" in MUT)
            if not ok:
                raise CkzError("ChunkDecodeFailed", f"symbol, element {raw_off // 2 + i}")
            syms.append((neg, tt, top, rest))
            T += rest
        # 7.10 step 4 / 7.10.1 step 5: stream 9, then its padding
        B = T // 8 if "b_floor" in MUT else (T + 7) // 8
        codec, b = ents[9]
        bs = self.plain_stream(codec, b, B)
        if "bits_msb" in MUT:
            bs = bytes(int(f"{x:08b}"[::-1], 2) for x in bs)
        v = int.from_bytes(bs, "little")
        if v >> T and "no_padding" not in MUT:
            raise CkzError("ChunkDecodeFailed", "bit stream padding")
        # 7.10 step 5: values
        out = bytearray()
        pos = 0
        for i in range(E):
            sy = syms[i]
            if sy is None:
                x = r[i]
            else:
                neg, tt, top, rest = sy
                if "top_noshift" in MUT:
                    lead = (1 << tt) + top
                else:
                    lead = (1 << tt) + (top >> (2 - tt))
                low = (v >> pos) & ((1 << rest) - 1)
                if "low_msb" in MUT:
                    low = int(f"{low:0{rest}b}"[::-1], 2) if rest else 0
                pos += rest
                a = (lead << rest) + low
                if "neg_swap" in MUT:
                    neg ^= 1
                kk = key16(r[i]) - a if neg else key16(r[i]) + a
                if "no_wrap" in MUT and not 0 <= kk < 1 << 16:
                    raise CkzError("ChunkDecodeFailed", "key out of range")
                x = unkey16(kk % (1 << 16))
            out += bytes((x & 0xFF, x >> 8))
        return bytes(out)

    def codebook_chunk(self, F, ti, j):
        t = F.tensors[ti]
        q = t.quant
        raw_off, co, cs, cr, crc = self.chunk_info(F, ti, j)
        w = t.w
        ref = None
        if q.kind == 1:
            P, pi = self.reference(F, ti)
            ref = self.byte_range(P, pi, raw_off, cr)
        idx = self.indices(F, ti, j)
        out = bytearray()
        for i, jv in enumerate(idx):
            if q.kind == 2:
                if jv == 0:
                    out += bytes(w)
                else:
                    out += store(t.dtype, f32_of_bits(q.codebook[jv - 1]))
            else:
                cbits = q.codebook[jv - 1] if jv else None
                out += residual(t.dtype, ref[i * w:(i + 1) * w], q.reference_scale,
                                jv == 0, None if cbits is None else f32_of_bits(cbits))
        return bytes(out)

    # ---- 7.9.1 / 7.9.2
    def level_chunk(self, F, ti, j):
        t = F.tensors[ti]
        q = t.quant
        raw_off, co, cs, cr, crc = self.chunk_info(F, ti, j)
        w = t.w
        E = cr // w
        f = raw_off // w
        ref = None
        if q.kind in (3, 5):  # step 1
            P, pi = self.reference(F, ti)
            ref = self.byte_range(P, pi, raw_off, cr)
        lv = self.levels(F, ti, j)  # steps 2-6
        step = f32_of_bits(q.step)
        if q.step_source != -1:  # step 7
            P = self.need_parent(F)
            U = F.tensors[q.step_source]
            ui = P.find(U.name)
            if ui is None or P.tensors[ui].dtype != U.dtype or P.tensors[ui].shape != U.shape:
                raise CkzError("ReferenceMismatch", "step source " + U.name.decode())
            uw = U.w
            ub = self.byte_range(P, ui, f * uw, E * uw)
            if "src_self" in MUT:
                ub = self.byte_range(F, q.step_source, f * uw, E * uw)
            D = []
            for i in range(E):
                e = exponent(U.dtype, ub[i * uw:(i + 1) * uw])
                d = e - q.step_center
                s = (q.step_slope * d) // 2
                if "slope_trunc" in MUT:
                    s = int(q.step_slope * d / 2)
                if "noclamp_s" not in MUT:
                    s = min(q.step_limit, max(-q.step_limit, s))
                D.append(math.ldexp(step, s))
        else:
            D = [step] * E
        out = bytearray()
        g = q.reference_scale
        for i in range(E):
            lq = lv[i]
            r = ref[i * w:(i + 1) * w] if ref is not None else None
            if q.kind == 4:
                if lq == 0:
                    out += bytes(w)
                elif t.dtype == 1 and "f64direct32" not in MUT:
                    out += struct.pack("<d", lq * D[i])  # see the walk: binary64 for F64
                else:
                    out += store(t.dtype, round32(lq * D[i]))
            elif q.kind == 3:
                if t.dtype == 1 and "f64resid32" not in MUT:
                    c = lq * D[i]
                else:
                    c = round32(lq * D[i])
                out += residual(t.dtype, r, g, lq == 0, c)
            else:
                out += loglevel(t.dtype, r, g, lq, D[i], q.log_unit)
        return bytes(out)


# ---------------------------------------------------------------- float helpers
INF = float("inf")


def round32(x):
    """binary64 value -> nearest binary32 (ties to even), as a Python float."""
    if x != x:
        return x
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(INF, x)


def f32_to_f16_bits(b):
    sign = (b >> 16) & 0x8000
    ex = (b >> 23) & 0xFF
    man = b & 0x7FFFFF
    if ex == 255:
        return sign | (0x7C00 if man == 0 else 0x7E00)
    if ex == 0:
        m, e = man, -149
    else:
        m, e = man | 0x800000, ex - 150
    if m == 0:
        return sign
    u = m.bit_length() - 1 + e
    qe = -24 if u < -14 else u - 10
    sh = qe - e
    if sh <= 0:
        N = m << (-sh)
    else:
        N = m >> sh
        rem = m & ((1 << sh) - 1)
        half = 1 << (sh - 1)
        if rem > half or (rem == half and N & 1):
            N += 1
    if qe == -24:
        return sign | N  # N == 1024 is the smallest normal, encoded the same way
    if N == 2048:
        N = 1024
        u += 1
    be = u + 15
    if be >= 31:
        return sign | 0x7C00
    return sign | (be << 10) | (N - 1024)


def store(dtype, v):
    """7.6 "stored into the dtype" of a binary32 value v (Python float)."""
    if dtype == 1:
        if v != v:
            return struct.pack("<Q", 0x7FF8000000000000 | ((bits_of_f32(v) >> 31) << 63))
        return struct.pack("<d", v)
    b = bits_of_f32(v) if v == v else (0x7FC00000 | ((struct.unpack("<Q", struct.pack("<d", v))[0] >> 63) << 31))
    if dtype == 2:
        return struct.pack("<I", b)
    if dtype == 3:
        return struct.pack("<H", f32_to_f16_bits(b))
    if (b >> 23) & 0xFF == 0xFF and b & 0x7FFFFF:
        return struct.pack("<H", 0x7FC0 | ((b >> 16) & 0x8000))
    return struct.pack("<H", (b + 0x7FFF + ((b >> 16) & 1)) >> 16)


def widen(dtype, rb):
    """reference bytes -> (value as Python float, is_nan, sign bit)."""
    if dtype == 1:
        u = struct.unpack("<Q", rb)[0]
        return struct.unpack("<d", rb)[0], ((u >> 52) & 0x7FF) == 0x7FF and u & ((1 << 52) - 1), u >> 63
    if dtype == 2:
        u = struct.unpack("<I", rb)[0]
    elif dtype == 4:
        u = struct.unpack("<H", rb)[0] << 16
    else:
        h = struct.unpack("<H", rb)[0]
        return struct.unpack("<e", rb)[0], (h & 0x7C00) == 0x7C00 and h & 0x3FF, h >> 15
    return f32_of_bits(u), ((u >> 23) & 0xFF) == 0xFF and u & 0x7FFFFF, u >> 31


CANON = {1: (0x7FF8000000000000, 63, "<Q"), 2: (0x7FC00000, 31, "<I"),
         3: (0x7E00, 15, "<H"), 4: (0x7FC0, 15, "<H")}


def canon_nan(dtype, sign):
    v, sh, fmt = CANON[dtype]
    return struct.pack(fmt, v | (sign << sh))


def residual(dtype, rb, gbits, zero, c):
    """7.6 steps 1-4; zero: j = 0 (q = 0); c: the centre (binary32, or binary64 for F64)."""
    if gbits == 0x3F800000 and zero:
        return rb
    a, nan, sign = widen(dtype, rb)
    if nan:
        return canon_nan(dtype, sign)
    g = f32_of_bits(gbits)
    if dtype == 1:
        b = a if gbits == 0x3F800000 else a * g
        s = b if zero else b + c
        return struct.pack("<d", s)
    b = a if gbits == 0x3F800000 else round32(a * g)
    s = b if zero else round32(b + c)
    return store(dtype, s)


FTAB = [f32_of_bits(x) for x in (
    0x3F800000, 0x3F85AAC3, 0x3F8B95C2, 0x3F91C3D3, 0x3F9837F0, 0x3F9EF532, 0x3FA5FED7, 0x3FAD583F,
    0x3FB504F3, 0x3FBD08A4, 0x3FC5672A, 0x3FCE248C, 0x3FD744FD, 0x3FE0CCDF, 0x3FEAC0C7, 0x3FF5257D)]


def ldexp64(t, n):
    try:
        return math.ldexp(t, n)
    except OverflowError:
        return math.copysign(INF, t)


def loglevel(dtype, rb, gbits, q, D, k):
    if gbits == 0x3F800000 and q == 0 and "log_nostep1" not in MUT:
        return rb
    a, nan, sign = widen(dtype, rb)
    if nan:
        return canon_nan(dtype, sign)
    g = f32_of_bits(gbits)
    f64 = dtype == 1
    if f64:
        b = a if gbits == 0x3F800000 else a * g
    else:
        b = a if gbits == 0x3F800000 else round32(a * g)
    if q == 0:
        s = b
    elif b == 0 and "log_nozero" not in MUT:
        s = q * D if f64 and "f64logzero32" not in MUT else round32(q * D)
    else:
        if k > 0:
            n = q >> k
            jj = 16 * (q - (n << k)) >> k
        else:
            n = q << (-k)
            jj = 0
        if f64:
            t = b * FTAB[jj]
            s = ldexp64(t, max(-2200, min(2200, n)))
        else:
            t = round32(b * FTAB[jj]) if "log_single" not in MUT else b * FTAB[jj]
            s = round32(ldexp64(t, max(-400, min(400, n)) if "log_noclamp" not in MUT else n))
    if f64:
        return struct.pack("<d", s)
    return store(dtype, s)


def exponent(dtype, ub):
    """7.9.1's e_i of a step-source element."""
    if dtype == 1:
        E = (struct.unpack("<Q", ub)[0] >> 52) & 0x7FF
        return -1000 if E == 0 else 1000 if E == 2047 else E - 1023
    if dtype == 3:
        v = struct.unpack("<e", ub)[0]
        if "f16sub1000" in MUT and (struct.unpack("<H", ub)[0] & 0x7C00) == 0:
            return -1000
        if math.isinf(v) or v != v:
            return 1000
        u = bits_of_f32(v)
    elif dtype == 4:
        u = struct.unpack("<H", ub)[0] << 16
    else:
        u = struct.unpack("<I", ub)[0]
    E = (u >> 23) & 0xFF
    if "exp_raw" in MUT:
        return E - 127
    return -1000 if E == 0 else 1000 if E == 255 else E - 127


# ---------------------------------------------------------------- 7.10 definitions
def key16(u):
    if "key_noxor" in MUT:
        return (u + 0x8000) & 0xFFFF
    return u ^ 0xFFFF if u >= 0x8000 else u + 0x8000


def unkey16(k):
    if "key_noxor" in MUT:
        return (k - 0x8000) & 0xFFFF
    return k - 0x8000 if k >= 0x8000 else k ^ 0xFFFF


def expclass(v):
    """7.8.2, on a binary32 pattern v."""
    if "class_signed" in MUT:
        return (min(max(v >> 23, 95), 130) - 95) >> 2
    return (min(max((v >> 23) & 0xFF, 95), 130) - 95) >> 2


def widen16(dtype, u):
    """7.6: the binary32 pattern of a BF16 (4) or F16 (3) pattern u, computed with integers."""
    if dtype == 4:
        return u << 16
    sign = (u >> 15) << 31
    e = (u >> 10) & 0x1F
    f = u & 0x3FF
    if "class_exp16" in MUT:  # the misreading: the 16-bit exponent field as is
        return sign | (e << 23)
    if e == 31:
        return sign | (0xFF << 23) | (f << 13)
    if e:
        return sign | ((e + 112) << 23) | (f << 13)
    if f == 0:
        return sign
    if "class_f16sub0" in MUT:
        return sign | (f << 13)
    z = 10 - f.bit_length()  # 0..9 (the spec's parenthetical says 1..10)
    if "class_z1" in MUT:
        z += 1
    # value f * 2^-24 = 1.m * 2^(-15 - z): biased exponent 112 - z; fraction bits below the
    # leading one of f, left-aligned in 23 bits
    m = (f << (z + 1)) & 0x3FF
    return sign | ((112 - z) << 23) | (m << 13)


def class16(dtype, u):
    return expclass(widen16(dtype, u))


def _check_widen16():
    for u in range(1 << 16):
        h = struct.unpack("<e", struct.pack("<H", u))[0]
        if h != h:
            continue
        assert widen16(3, u) == bits_of_f32(h), hex(u)


# ---------------------------------------------------------------- 7.11: the LSTM level model
LM_MUTANTS = {
    "bit8_unknown": "P5 with bit 8 still unknown (a 0.8 reader)",
    "lm1_nomix": "LM1 without the mix_init range check",
    "lm2_order": "LM2's two checks in the other order (both set in a keyframe: FieldOutOfRange)",
    "lm3_oneway": "LM3 only checks 'model => bit 8', not the converse",
    "c1_nobit8": "C1 accepts codec 6 without required feature bit 8",
    "r5_lazy": "R5 not checked at chain open (only a codec-6 chunk asks for the model)",
    "r5_top_only": "R5 checked for the file being decoded only, not for its parents",
    "role_enum": "role index r = the Role enum value (Other 0, Weight 1, ...) instead of Weight 0 .. Other 3",
    "absent_as_zero": "an absent feature is F(0) = clip instead of 2 clip + 1",
    "pa_swap": "x_2 = F(A[i]), x_3 = F(P[i])",
    "step_nonzero_only": "the network steps only before non-zero levels",
    "step_after": "the step comes after the level (level i decoded with the h of level i - 1's step)",
    "shift_trunc": "signed >> read as truncation toward zero (C's division)",
    "gate_ifog": "gate rows in PyTorch-like i, f, o, g order instead of i, f, g, o",
    "out_shift_m2": "y's sum shifted by out_shift - 2 (the units column) instead of out_shift",
    "no_state_update": "the cml state is not updated by mixed decisions",
    "slot_unary_m": "unary decision m uses slot m instead of m + 1",
    "w_noclamp": "mixer weights not clamped to -2^20 .. 2^20",
    "escape_mixed": "escape prefix decisions mixed too (slot 15)",
    "c_noclamp": "cell state not clamped to -32767 .. 32767",
    "model_top": "every lstm chunk of the chain (parent and aux levels too) decoded with the model of the file being decoded, not of the chunk's own file",
    "h_old_c": "h[k] from ACT(TANH, c[k]) of the cell before this step's update",
    "y_noclamp": "the network's logit y not clamped to -2047 .. 2047",
    "lm_left_rows": "feature x_0 takes the previous level at a row's first column too",
    "stretch_p_after": "in_0 = STRETCH[P >> 4] of the mixed probability of the previous decision",
    "mix_init_role0": "mix_init[0] for every role",
    "err_noshift": "err = ((bit = 0 ? 65536 : 0) - P) without >> 4, and >> 18 in the update",
}
# 7.9.3's moment aux levels (0.10, required feature bit 9; docs/spec-walk-0.10.md)
MA_MUTANTS = {
    "bit9_unknown": "P5 with bit 9 still unknown (a 0.9 reader)",
    "q12_off": "no rule Q12 (bit 9 accepted in a keyframe or a file without levels)",
    "mom_aux_off": "bit 9 ignored: a level Weight of a link has no aux levels (0.9's rule)",
    "mom_aux_self": "the Weight's aux levels are this file's Moment1's levels, not the parent's",
}
# 7.11.7's lstm-cm stream codec (0.11, rule LM4, required feature bit 10; docs/spec-walk-0.11.md).
# The LM_MUTANTS of the network and the mixer (role_enum, gate_ifog, shift_trunc, model_top, ...)
# act on codec 7 too: LstmNet is shared.
LMC_MUTANTS = {
    "bit10_unknown": "P5 with bit 10 still unknown (a 0.10 reader)",
    "lm4_off": "no rule LM4 (bit 10 accepted without bit 8)",
    "c1_nobit10": "C1 accepts codec 7 without required feature bit 10",
    "c1_codec7_bit2": "C1 also asks for required feature bit 2 before it accepts codec 7 ('exactly as cm does')",
    "c1_codec7_levels": "C1 accepts codec 7 in a tensor with a level kind (decoded as cml)",
    "lmc_slot_lsb": "tree bit slots counted from the least significant bit (the last bit decoded is slot 2)",
    "lmc_slot_from1": "tree bits in slots 1 .. B (the unused sign slot taken as the first)",
    "lmc_slot_one": "every tree bit in slot 2",
    "lmc_slot_node": "a tree bit's slot is its node number (1 .. 2^B - 1), capped at 15",
    "lmc_feat_clip": "features clipped as 7.11.2's F(v) = clamp(v, -clip, clip) + clip instead of bucketed",
    "lmc_feat_min": "features = min(j, 2 clip) instead of bucket(j, k, 2 clip + 1)",
    "lmc_bucket4": "features bucketed with cm's m = 4 instead of 2 clip + 1",
    "lmc_bucket_K": "every feature bucketed against K (the chunk's centres), not K_P / K_A",
    "lmc_absent_as_zero": "an absent feature is G(0) = 0 instead of 2 clip + 1",
    "lmc_absent_clip": "an absent feature is clip (7.11.2's F(0)) instead of 2 clip + 1",
    "lmc_step_after": "the step comes after the index (index i decoded with the h of index i - 1's step)",
    "lmc_step_nonzero_only": "the network steps only before non-zero indices (after the SIG decision)",
    "lmc_sig_unmixed": "the SIG decision decoded by cm alone, only the tree bits mixed",
    "lmc_no_state_update": "cm's state not updated after a mixed decision",
    "lmc_left_rows": "feature x_0 takes the previous index at a row's first column too",
    "lmc_pa_swap": "x_2 = G(A[i], K_A), x_3 = G(P[i], K_P)",
}


def _load_lstm_tables():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lstm_tables.txt")
    tabs = {}
    with open(path) as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.split()
            vals = [int(x) for x in parts[2:]]
            assert len(vals) == int(parts[1]), parts[0]
            tabs[parts[0]] = vals
    return tabs


def lstm_tables_by_formula():
    """7.11.5's formulas, evaluated in binary64 (round: halves away from zero)."""
    def rnd(x):
        return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)
    sig = [rnd(1024 / (1 + math.exp(-(8 * n - 8188) / 1024))) for n in range(2048)]
    tnh = [rnd(1024 * math.tanh((8 * n - 8188) / 1024)) for n in range(2048)]
    st = []
    for i in range(4096):
        p = (16 * i + 8) / 65536
        st.append(min(2047, max(-2047, rnd(256 * math.log(p / (1 - p))))))
    sq = [min(65504, max(32, rnd(65536 / (1 + math.exp(-t / 256))))) for t in range(-2047, 2048)]
    return {"sigmoid": sig, "tanh": tnh, "stretch": st, "squash": sq}


_LT = _load_lstm_tables()
SIGMOID, TANH, STRETCH, SQUASH = _LT["sigmoid"], _LT["tanh"], _LT["stretch"], _LT["squash"]
assert len(SIGMOID) == len(TANH) == 2048 and len(STRETCH) == 4096 and len(SQUASH) == 4095
assert SQUASH[2047] == 32768


def lstm_params_length(H, clip):
    V = 2 * clip + 2
    return 2 * (4 * H + 16 * V * H + 16 * H + 4 * H * H + 16 * H + 16) + 768


class LstmModel:
    """7.11.1: the arrays of `params`, row-major, int16 then int32 mix_init."""

    def __init__(self, H, clip, rs, os_, params):
        self.H, self.clip, self.rs, self.os = H, clip, rs, os_
        V = self.V = 2 * clip + 2
        G = 4 * H
        n16 = G + 16 * V * H + 16 * H + 4 * H * H + 16 * H + 16
        a = struct.unpack_from(f"<{n16}h", params, 0)
        self.mix_flat = list(struct.unpack_from("<192i", params, 2 * n16))
        p = 0

        def take(n):
            nonlocal p
            r = list(a[p:p + n])
            p += n
            return r
        self.gate_bias = take(G)
        self.embed = [[take(G) for _x in range(V)] for _f in range(4)]
        self.role = [take(G) for _r in range(4)]
        self.recur = [take(H) for _j in range(G)]
        self.out = [take(H) for _s in range(16)]
        self.out_bias = take(16)
        assert p == n16
        self.mix_init = [[self.mix_flat[(r * 16 + s) * 3:(r * 16 + s) * 3 + 3] for s in range(16)]
                         for r in range(4)]


def _sh(x, s):
    """x >> s of a signed value: floor(x / 2^s) (7.11); the mutant truncates toward zero."""
    if "shift_trunc" in MUT and x < 0:
        return -((-x) >> s)
    return x >> s


def _clamp(x, a, b):
    return b if x > b else a if x < a else x


def _act(T, z):
    return T[(_clamp(z, -8192, 8191) + 8192) >> 3]


class LstmNet:
    """7.11.2-7.11.4: the network's state (h, c) and the mixer's weights of one chunk, for the
    lstm codec (6) and, since 0.11, the lstm-cm codec (7, 7.11.7)."""

    def __init__(self, M, role, rc):
        H, G = M.H, 4 * M.H
        self.M, self.rc = M, rc
        r = role if "role_enum" in MUT else {1: 0, 2: 1, 3: 2, 0: 3}[role]
        self.h = [0] * H
        self.c = [0] * H
        self.w = [list(M.mix_init[0 if "mix_init_role0" in MUT else r][s]) for s in range(16)]
        self.base = [M.gate_bias[j] + M.role[r][j] for j in range(G)]
        if "gate_ifog" in MUT:  # rows read as i, f, o, g: candidate and output gate swapped
            self.perm = list(range(2 * H)) + list(range(3 * H, 4 * H)) + list(range(2 * H, 3 * H))
        else:
            self.perm = None
        self.last_P = None

    def step(self, x):
        """7.11.3, with the features x_0 .. x_3."""
        from operator import mul
        M, h, c = self.M, self.h, self.c
        H, G = M.H, 4 * M.H
        e0, e1, e2, e3 = (M.embed[0][x[0]], M.embed[1][x[1]], M.embed[2][x[2]], M.embed[3][x[3]])
        rs = M.rs
        base = self.base
        z = [_sh(sum(map(mul, M.recur[j], h)), rs) + base[j] + e0[j] + e1[j] + e2[j] + e3[j]
             for j in range(G)]
        if self.perm is not None:
            z = [z[self.perm[j]] for j in range(G)]
        for k in range(H):
            ig = _act(SIGMOID, z[k])
            fg = _act(SIGMOID, z[H + k])
            gg = _act(TANH, z[2 * H + k])
            og = _act(SIGMOID, z[3 * H + k])
            ck = _sh(fg * c[k] + ig * gg, 10)
            if "c_noclamp" not in MUT:
                ck = _clamp(ck, -32767, 32767)
            if "h_old_c" in MUT:
                ck, c[k] = c[k], ck
            else:
                c[k] = ck
            h[k] = _sh(og * _act(TANH, ck), 10)

    def mixed(self, Pst, Nst, idx, s):
        """7.11.4: a decision of slot s whose state (cml's or, 7.11.7, cm's) is Pst[idx]."""
        from operator import mul
        M, h = self.M, self.h
        p = Pst[idx]
        y = _sh(sum(map(mul, M.out[s], h)), M.os - 2 if "out_shift_m2" in MUT else M.os) \
            + M.out_bias[s]
        if "y_noclamp" not in MUT:
            y = _clamp(y, -2047, 2047)
        if "stretch_p_after" in MUT and self.last_P is not None:
            in0 = STRETCH[self.last_P >> 4]
        else:
            in0 = STRETCH[p >> 4]
        ins = (in0, y, 256)
        ws = self.w[s]
        t = _clamp(_sh(ws[0] * ins[0] + ws[1] * ins[1] + ws[2] * ins[2], 16), -2047, 2047)
        P = SQUASH[t + 2047]
        self.last_P = P
        bit = self.rc.bit_at(P)
        if "err_noshift" in MUT:
            err = (65536 if bit == 0 else 0) - P
            sh = 18
        else:
            err = _sh((65536 if bit == 0 else 0) - P, 4)
            sh = 14
        lo, hi = -2 ** 20, 2 ** 20
        for k in range(3):
            v = ws[k] + _sh(ins[k] * err * 3, sh)
            ws[k] = v if "w_noclamp" in MUT else _clamp(v, lo, hi)
        if "no_state_update" not in MUT and "lmc_no_state_update" not in MUT:  # 7.7.2's update
            n = Nst[idx]
            rr = 65536 // (n + 2)
            if bit == 0:
                Pst[idx] = p + (((65536 - p) * rr) >> 16)
            else:
                Pst[idx] = p - ((p * rr) >> 16)
            if n < 30:
                Nst[idx] = n + 1
        return bit


def lstm_decode(b, E, f, shape, Pl, Al, M, role):
    """7.11.2-7.11.4: a codec-6 stream -> the chunk's E levels (cml's binarization, 7.9.3)."""
    R = shape[-1] if len(shape) >= 2 else 0
    clip = M.clip
    rc = RangeDecoder(b)
    ZP, ZN = states(27)
    SP, SN = states(27)
    UP, UN = states(4 * 14)
    EP, EN = states(24)
    net = LstmNet(M, role, rc)
    step, mixed = net.step, net.mixed
    absent = clip if "absent_as_zero" in MUT else 2 * clip + 1

    def feat(v):
        if v is None:
            return absent
        return _clamp(v, -clip, clip) + clip

    def sgn(v):
        return 0 if not v else (1 if v > 0 else 2)

    out = []
    pending = None  # step_after mutant: features of the previous level
    for i in range(E):
        col = (f + i) % R if R else 0
        left = out[i - 1] if i >= 1 and (R == 0 or col != 0) else None
        up = out[i - R] if R and i >= R else None
        lfeat = left
        if "lm_left_rows" in MUT and i >= 1:  # the feature only: cml's contexts unchanged
            lfeat = out[i - 1]
        p = Pl[i] if Pl is not None else None
        a_ = Al[i] if Al is not None else None
        x = [feat(lfeat), feat(up), feat(p), feat(a_)]
        if "pa_swap" in MUT:
            x[2], x[3] = x[3], x[2]
        if "step_after" in MUT:
            if pending is not None:
                step(pending)
            pending = x
        elif "step_nonzero_only" not in MUT:
            step(x)
        lv, uv, pv, av = (left or 0), (up or 0), (p or 0), (a_ or 0)
        nb = (lv != 0) + (uv != 0)
        pc = 0 if Pl is None else 1 + (pv != 0)
        ac = 0 if Al is None else 1 + (av != 0)
        if mixed(ZP, ZN, (pc * 3 + nb) * 3 + ac, 0) == 0:
            out.append(0)
            continue
        if "step_nonzero_only" in MUT:
            step(x)
        neg = mixed(SP, SN, (sgn(pv) * 3 + sgn(av)) * 3 + sgn(lv), 1)
        a = abs(lv) + abs(uv) + 2 * abs(pv)
        mc = 0 if a == 0 else 1 if a <= 2 else 2 if a <= 6 else 3
        m = 1
        while m <= 14 and mixed(UP, UN, mc * 14 + m - 1, m if "slot_unary_m" in MUT else m + 1) == 1:
            m += 1
        if m == 15:
            k = 0
            while True:
                if "escape_mixed" in MUT:
                    bit = mixed(EP, EN, k, 15)
                else:
                    bit = rc.bit(EP, EN, k)
                if bit != 1:
                    break
                k += 1
                if k > 23:
                    raise CkzError("ChunkDecodeFailed", f"escape prefix, element {f + i}")
            m = 15 + (1 << k) - 1 + rc.directn(k)
            if m > 2 ** 24 - 1:
                raise CkzError("ChunkDecodeFailed", f"level beyond 2^24-1, element {f + i}")
        out.append(-m if neg else m)
    rc.finish()
    return out


# ---------------------------------------------------------------- 8: source files
def decode_prolog(F, f, dec_cache):
    key = (id(F), f["path"], id(f))
    if key in dec_cache:
        return dec_cache[key]
    c = f["codec"]
    if c == 0:
        P = f["prolog"]
    else:
        hist = None
        if c == 2:
            par = F.parent
            if f["parent_file"] >= len(par.files):
                raise CkzError("ReferenceMismatch", "R4")
            hist = decode_prolog(par, par.files[f["parent_file"]], dec_cache)
        P = zstd_decode(f["prolog"], f["raw_length"], hist, err="PrologDecodeFailed")
        if crc32c(P) != f["crc"]:
            raise CkzError("PrologDecodeFailed", "crc")
    dec_cache[key] = P
    return P


def decode_all(path):
    """Returns {relative path: bytes}; raises CkzError."""
    top = open_chain(path)
    dec = Decoder(top)
    pc = {}
    F = top
    chain = []
    while F is not None:
        chain.append(F)
        F = F.parent
    for F in reversed(chain):  # prologs first, keyframe first (8.4's informative order)
        for f in F.files:
            decode_prolog(F, f, pc)
    # R3 for tensors without elements (7.6, 7.9.4's last paragraph): no chunk asks for the
    # reference or the step source, so check them here, for every link of the chain.
    # (Added after the walk, with finding 11's vector; the walk itself did not implement it.)
    for F in chain:
        if F.parent is None:
            continue
        for ti, t in enumerate(F.tensors):
            if numel(t.shape) != 0:
                continue
            if t.predictor or (t.quant is not None and t.quant.kind in (1, 3, 5)):
                dec.reference(F, ti)
            if t.quant is not None and t.quant.kind in LEVEL_KINDS and t.quant.step_source != -1 \
                    and "empty_nosrc" not in MUT:
                U = F.tensors[t.quant.step_source]
                ui = F.parent.find(U.name)
                if ui is None or F.parent.tensors[ui].dtype != U.dtype or \
                        F.parent.tensors[ui].shape != U.shape:
                    raise CkzError("ReferenceMismatch", "step source " + U.name.decode())
    tb = {}
    for ti, t in enumerate(top.tensors):
        tb[ti] = b"".join(dec.chunk_bytes(top, ti, j) for j in range(len(t.chunks)))
    out = {}
    for f in top.files:
        P = decode_prolog(top, f, pc)
        ts = f["tensors"]
        sp = f["splits"] or [len(P)] * len(ts)
        parts = []
        prev = 0
        for k, ti in enumerate(ts):
            parts.append(P[prev:sp[k]])
            parts.append(tb[ti])
            prev = sp[k]
        parts.append(P[prev:])
        data = bytearray(b"".join(parts))
        for (q, k, _) in f["patches"]:
            X = q + sum(len(tb[ts[jj]]) for jj in range(len(ts)) if sp[jj] <= q)
            data[X:X + 4] = struct.pack("<I", zlib.crc32(tb[ts[k]]) & M32)
        out[f["path"].decode()] = bytes(data)
    return out


# ---------------------------------------------------------------- runners
def run_case(cdir):
    c = json.load(open(os.path.join(cdir, "case.json")))
    try:
        out = decode_all(os.path.join(cdir, c["input"]))
    except CkzError as e:
        if c["kind"] == "valid":
            return False, f"error {e}"
        if e.name == c["expected_error"]:
            return True, f"rejected: {e}"
        return False, f"wrong error {e} (expected {c['expected_error']}, rule {c.get('rule')})"
    except Exception as e:  # a bug of this decoder
        return False, f"crash {type(e).__name__}: {e}"
    if c["kind"] != "valid":
        return False, f"accepted (expected {c['expected_error']}, rule {c.get('rule')})"
    if c.get("expected_output") == "reader-defined":
        return True, "decoded"
    exp = {e["path"]: e for e in c["expected"]}
    if set(exp) != set(out):
        return False, f"files {sorted(out)} != {sorted(exp)}"
    for p, e in exp.items():
        if len(out[p]) != e["size"] or hashlib.sha256(out[p]).hexdigest() != e["sha256"]:
            return False, f"{p}: wrong bytes"
    return True, "bit-exact"


def main(argv):
    if len(argv) >= 1 and argv[0] == "decode":
        try:
            out = decode_all(argv[1])
        except CkzError as e:
            print(f"ckz: {e}", file=sys.stderr)
            return 1
        for p, b in out.items():
            dst = os.path.join(argv[2], p)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as fh:
                fh.write(b)
        return 0
    if argv and argv[0] == "--check-tables":
        # 7.11.5: the shipped tables against the formulas
        calc = lstm_tables_by_formula()
        bad = 0
        for name, vals in calc.items():
            d = [i for i, (x, y) in enumerate(zip(vals, _LT[name])) if x != y]
            if len(vals) != len(_LT[name]) or d:
                bad += 1
                print(f"{name}: {len(d)} values differ, first at {d[:5]}")
            else:
                print(f"{name}: {len(vals)} values, the formula and lstm_tables.txt agree")
        return 1 if bad else 0
    cases = argv[0] if argv else "conformance/cases"
    globs = [argv[i + 1] for i, a in enumerate(argv) if a == "--cases"]
    allc = "--all" in argv
    npass = nfail = 0
    for name in sorted(os.listdir(cases)):
        if globs:
            if not any(fnmatch.fnmatch(name, g) for g in globs):
                continue
        elif not allc and not any(k in name for k in ("keysplit", "levels", "lstm", "moment-context")):
            continue
        ok, why = run_case(os.path.join(cases, name))
        print(("PASS " if ok else "FAIL ") + name + ": " + why, flush=True)
        npass += ok
        nfail += not ok
    print(f"spec_walk: {npass} passed, {nfail} failed")
    return 0 if nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
