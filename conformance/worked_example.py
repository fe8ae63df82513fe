#!/usr/bin/env python3
"""Writes conformance/WORKED_EXAMPLE.md: the smallest valid case annotated byte by byte.

    worked_example.py            rewrite WORKED_EXAMPLE.md from cases/core-smallest-f32-stored
    worked_example.py --check    fail (exit 1) unless WORKED_EXAMPLE.md is what it would write

Everything in the document is computed from the case's files by this script, which reads the
file with nothing but spec/ckz.md and schema/ckz.fbs: its own CRC-32C, its own FlatBuffers
walker (vtables, tables, vectors, strings), SHA-256 from hashlib. Every byte of the file is
accounted for; the script stops if one is not, or if a checksum, the decoded output or the
content id disagree with the case. Python 3.5+ standard library only.
"""

import argparse
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CASE = "core-smallest-f32-stored"
OUT = os.path.join(HERE, "WORKED_EXAMPLE.md")

# ---- CRC-32C (spec 3.1) ------------------------------------------------------------------

_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283 and crc32c(b"") == 0


def u16(b, o): return struct.unpack_from("<H", b, o)[0]
def u32(b, o): return struct.unpack_from("<I", b, o)[0]
def i32(b, o): return struct.unpack_from("<i", b, o)[0]
def u64(b, o): return struct.unpack_from("<Q", b, o)[0]
def i64(b, o): return struct.unpack_from("<q", b, o)[0]
def hx(b): return " ".join("%02x" % x for x in b)


# ---- The header schema (schema/ckz.fbs), as (field name, type) in field-id order ---------
# Types: u8/bool/i32/u32/i64 scalars, "enum:Name", "string", "vec_u8", "vec_u32", "vec_u64",
# "vec_chunk" (structs), "table:Name", "vec_table:Name", "union_type", "union:<type field>".

ENUMS = {
    "DType": ["Invalid", "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "Bool"],
    "Role": ["Other", "Weight", "Moment1", "Moment2"],
    "Predictor": ["None", "XorRef", "SubRef"],
    "SourceFormat": ["Raw", "Safetensors"],
    "MetaValue": ["NONE", "IntValue", "FloatValue", "StringValue", "BytesValue", "BoolValue"],
}
TABLES = {
    "Header": [("content_id", "vec_u8"), ("step", "i64?"), ("link", "table:Link"),
               ("tensors", "vec_table:Tensor"), ("files", "vec_table:SourceFile"),
               ("metadata", "vec_table:MetaEntry"), ("writer", "string")],
    "Tensor": [("name", "string"), ("dtype", "enum:DType"), ("shape", "vec_u64"),
               ("role", "enum:Role"), ("owner", "i32"), ("predictor", "enum:Predictor"),
               ("byte_planes", "bool"), ("chunks", "vec_chunk")],
    "Link": [("parent_content_id", "vec_u8"), ("parent_step", "i64?"), ("path_hint", "string"),
             ("depth", "u32")],
    "SourceFile": [("path", "string"), ("format", "enum:SourceFormat"), ("prolog", "vec_u8"),
                   ("tensors", "vec_u32")],
    # A union field takes two field ids: its type (id n) and its value (id n + 1).
    "MetaEntry": [("key", "string"), ("value_type", "union_type"), ("value", "union:value_type")],
}
DEFAULTS = {"Header.step": "null (no value)", "Header.link": "absent (a keyframe)",
            "Tensor.dtype": "0 (Invalid)", "Tensor.role": "0 (Other)", "Tensor.owner": "-1",
            "Tensor.predictor": "0 (None)", "Tensor.byte_planes": "false",
            "SourceFile.format": "0 (Raw)", "Link.parent_step": "null", "Link.depth": "0"}
SCALAR_SIZE = {"u8": 1, "bool": 1, "i32": 4, "u32": 4, "i64?": 8, "union_type": 1}


class Dump:
    """Annotations of byte ranges of the file; every byte must be claimed exactly once."""

    def __init__(self, data):
        self.data = data
        self.owner = [None] * len(data)
        self.rows = []  # (start, end, text)

    def add(self, start, length, text):
        for i in range(start, start + length):
            if self.owner[i] is not None:
                raise SystemExit("byte 0x%x claimed twice: %r and %r" % (i, self.owner[i], text))
            self.owner[i] = text
        self.rows.append((start, start + length, text))

    def padding(self, start, end, why):
        if end > start:
            if any(self.data[start:end]):
                raise SystemExit("non-zero padding at 0x%x" % start)
            self.add(start, end - start, why)

    def unclaimed(self, start, end):
        out, i = [], start
        while i < end:
            if self.owner[i] is None:
                j = i
                while j < end and self.owner[j] is None:
                    j += 1
                out.append((i, j))
                i = j
            else:
                i += 1
        return out

    def table(self, start, end, offset_label=None, column="file offset"):
        lines = ["| %s | %sbytes | meaning |" % (column, "buffer offset | " if offset_label else ""),
                 "|---:|%s---|---|" % ("---:|" if offset_label is not None else "")]
        for s, e, text in sorted(r for r in self.rows if start <= r[0] < end):
            first = True
            for p in range(s, e, 16):
                q = min(e, p + 16)
                cells = ["0x%04x" % p]
                if offset_label is not None:
                    cells.append("+0x%03x" % (p - offset_label))
                cells.append("`%s`" % hx(self.data[p:q]))
                cells.append(text if first else "(continued)")
                lines.append("| " + " | ".join(cells) + " |")
                first = False
        return "\n".join(lines)


class FlatBuffer:
    """Walks the header buffer with TABLES, annotating every byte it reads."""

    def __init__(self, dump, base, length):
        self.d, self.b, self.base, self.length = dump, dump.data, base, length
        self.vtables = set()
        self.values = {}

    def at(self, pos):
        return "buf+0x%x" % pos

    def abs(self, pos):
        if not 0 <= pos < self.length:
            raise SystemExit("FlatBuffers offset outside the header")
        return self.base + pos

    def root(self):
        root = u32(self.b, self.base)
        self.d.add(self.base, 4, "root `uoffset_t` = %d: the root table (`Header`) is at %s"
                   % (root, self.at(root)))
        ident = self.b[self.base + 4:self.base + 8]
        assert ident == b"CKZH"
        self.d.add(self.base + 4, 4, "file identifier `CKZH` (spec 4.1, rule H2)")
        return self.table(root, "Header", "Header (root)")

    def table(self, pos, name, label):
        a = self.abs(pos)
        soff = i32(self.b, a)
        vt = pos - soff
        self.d.add(a, 4, "**%s table** starts: `soffset_t` = %d, so its vtable is at %s - (%d) = %s"
                   % (label, soff, self.at(pos), soff, self.at(vt)))
        fields = TABLES[name]
        vsize = u16(self.b, self.abs(vt))
        tsize = u16(self.b, self.abs(vt) + 2)
        nslots = (vsize - 4) // 2
        slots = [u16(self.b, self.abs(vt) + 4 + 2 * i) for i in range(nslots)]
        if vt not in self.vtables:
            self.vtables.add(vt)
            self.d.add(self.abs(vt), 2, "vtable of `%s`: vtable size %d bytes (%d field slots)"
                       % (name, vsize, nslots))
            self.d.add(self.abs(vt) + 2, 2, "vtable of `%s`: table size %d bytes (soffset + "
                       "inline fields)" % (name, tsize))
            for i, off in enumerate(slots):
                fname = fields[i][0] if i < len(fields) else "(unknown field id %d)" % i
                self.d.add(self.abs(vt) + 4 + 2 * i, 2,
                           "vtable slot %d, `%s.%s`: %s" % (
                               i, name, fname, "at table+%d" % off if off else
                               "0 = absent, so the default: " + DEFAULTS.get(
                                   name + "." + fname, "empty / absent")))
        else:
            pass  # shared vtable, annotated once
        for i, (fname, ftype) in enumerate(fields):
            if i >= nslots or slots[i] == 0:
                continue
            self.field(pos + slots[i], name, fname, ftype, pos)
        return pos

    def field(self, pos, tname, fname, ftype, table_pos):
        a = self.abs(pos)
        qual = "`%s.%s`" % (tname, fname)
        if ftype.startswith("enum:"):
            v = self.b[a]
            names = ENUMS[ftype[5:]]
            self.d.add(a, 1, "%s = %d (%s)" % (qual, v, names[v] if v < len(names) else "?"))
        elif ftype in ("u8", "union_type"):
            v = self.b[a]
            self.values[(table_pos, fname)] = v
            self.d.add(a, 1, "%s = %d" % (qual, v))
        elif ftype == "bool":
            self.d.add(a, 1, "%s = %s" % (qual, "true" if self.b[a] else "false"))
        elif ftype == "i32":
            self.d.add(a, 4, "%s = %d" % (qual, i32(self.b, a)))
        elif ftype == "u32":
            self.d.add(a, 4, "%s = %d" % (qual, u32(self.b, a)))
        elif ftype == "i64?":
            self.d.add(a, 8, "%s = %d" % (qual, i64(self.b, a)))
        else:
            target = pos + u32(self.b, a)
            kind = {"string": "string", "vec_u8": "[ubyte]", "vec_u32": "[uint]",
                    "vec_u64": "[ulong]", "vec_chunk": "[Chunk]"}.get(ftype, ftype.split(":")[-1])
            if ftype.startswith("vec_table:"):
                kind = "[%s]" % ftype.split(":")[1]
            self.d.add(a, 4, "%s: `uoffset_t` %d -> %s %s at %s" % (
                qual, u32(self.b, a), "table" if ftype.startswith(("table:", "union:")) else
                "vector" if ftype != "string" else "a", kind, self.at(target)))
            self.object(target, tname, fname, ftype, table_pos)

    def object(self, pos, tname, fname, ftype, table_pos):
        a = self.abs(pos)
        qual = "`%s.%s`" % (tname, fname)
        if ftype.startswith("table:"):
            self.table(pos, ftype[6:], ftype[6:])
            return
        if ftype.startswith("union:"):
            t = self.values[(table_pos, ftype[6:])]
            self.table(pos, ENUMS["MetaValue"][t], ENUMS["MetaValue"][t])
            return
        n = u32(self.b, a)
        if ftype == "string":
            s = self.b[a + 4:a + 4 + n]
            self.d.add(a, 4, "%s: string length %d" % (qual, n))
            if n:
                self.d.add(a + 4, n, "%s: the %d bytes %s" % (qual, n, json.dumps(s.decode("utf-8"))))
            assert self.b[a + 4 + n] == 0
            self.d.add(a + 4 + n, 1, "%s: string terminator (NUL, not counted in the length)" % qual)
            self.values[(table_pos, fname)] = s
            return
        self.d.add(a, 4, "%s: vector length %d" % (qual, n))
        if ftype == "vec_u8":
            if n:
                self.d.add(a + 4, n, "%s: %d bytes" % (qual, n))
            self.values[(table_pos, fname)] = self.b[a + 4:a + 4 + n]
        elif ftype == "vec_u32":
            for i in range(n):
                self.d.add(a + 4 + 4 * i, 4, "%s[%d] = %d" % (qual, i, u32(self.b, a + 4 + 4 * i)))
        elif ftype == "vec_u64":
            for i in range(n):
                self.d.add(a + 4 + 8 * i, 8, "%s[%d] = %d" % (qual, i, u64(self.b, a + 4 + 8 * i)))
        elif ftype == "vec_chunk":
            chunks = []
            for i in range(n):
                c = a + 4 + 32 * i
                off, stored, raw, crc, res = struct.unpack_from("<QQQII", self.b, c)
                chunks.append((off, stored, raw, crc, res))
                self.d.add(c, 8, "%s[%d].offset = %d (0x%x): the chunk's stored bytes start there"
                           % (qual, i, off, off))
                self.d.add(c + 8, 8, "%s[%d].stored_length = %d" % (qual, i, stored))
                self.d.add(c + 16, 8, "%s[%d].raw_length = %d (decoded bytes)" % (qual, i, raw))
                self.d.add(c + 24, 4, "%s[%d].crc32c = 0x%08x (of the decoded bytes)" % (qual, i, crc))
                self.d.add(c + 28, 4, "%s[%d].reserved = %d (must be 0)" % (qual, i, res))
            self.values[(table_pos, fname)] = chunks
        elif ftype.startswith("vec_table:"):
            name = ftype.split(":")[1]
            for i in range(n):
                p = a + 4 + 4 * i
                target = pos + 4 + 4 * i + u32(self.b, p)
                self.d.add(p, 4, "%s[%d]: `uoffset_t` %d -> `%s` table at %s" % (
                    qual, i, u32(self.b, p), name, self.at(target)))
                self.table(target, name, "%s[%d]" % (fname, i))


def render():
    case_dir = os.path.join(HERE, "cases", CASE)
    with open(os.path.join(case_dir, "input.ckz"), "rb") as f:
        data = f.read()
    with open(os.path.join(case_dir, "case.json"), "rb") as f:
        case = json.loads(f.read().decode("utf-8"))
    exp_path = case["expected"][0]["path"]
    with open(os.path.join(case_dir, "expected", exp_path), "rb") as f:
        expected = f.read()
    d = Dump(data)
    L = len(data)

    # ---- Preamble.
    assert data[:8] == b"\x89CKZ\r\n\x1a\n"
    major, minor, res0, req, opt, hoff, hlen, hcrc, res1, pcrc = struct.unpack_from(
        "<HHIQQQQIQI", data, 8)
    assert pcrc == crc32c(data[:60]) and hcrc == crc32c(data[hoff:hoff + hlen])
    d.add(0, 8, "`magic` = `89 'C' 'K' 'Z' CR LF 1A LF` (spec 2)")
    d.add(8, 2, "`major` = %d" % major)
    d.add(10, 2, "`minor` = %d" % minor)
    d.add(12, 4, "`reserved0` = %d" % res0)
    d.add(16, 8, "`required_features` = 0x%x (bit 0 clear: a keyframe, no link)" % req)
    d.add(24, 8, "`optional_features` = 0x%x" % opt)
    d.add(32, 8, "`header_offset` = %d (0x%x), a multiple of 64" % (hoff, hoff))
    d.add(40, 8, "`header_length` = %d (0x%x): the header is bytes 0x%x..0x%x" % (
        hlen, hlen, hoff, hoff + hlen - 1))
    d.add(48, 4, "`header_crc32c` = 0x%08x = CRC-32C of those %d bytes" % (hcrc, hlen))
    d.add(52, 8, "`reserved1` = %d" % res1)
    d.add(60, 4, "`preamble_crc32c` = 0x%08x = CRC-32C of bytes 0x00..0x3b" % pcrc)

    # ---- Header (walked first: it says where the chunk is).
    fbuf = FlatBuffer(d, hoff, hlen)
    root = fbuf.root()
    for s, e in d.unclaimed(hoff, hoff + hlen):
        d.padding(s, e, "FlatBuffers alignment padding (zero)")
    header_rows = d.table(hoff, hoff + hlen, hoff)

    vals = fbuf.values
    tensor_tables = sorted(k[0] for k in vals if k[1] == "chunks")
    assert len(tensor_tables) == 1
    chunks = vals[(tensor_tables[0], "chunks")]
    name = vals[(tensor_tables[0], "name")]
    shape = [3]
    off, stored, raw, crc, _ = chunks[0]
    content_id = vals[(root, "content_id")]
    prolog = [v for k, v in vals.items() if k[1] == "prolog"][0]
    writer = vals[(root, "writer")]

    # ---- The chunk (spec 7): one stream (no byte planes), stored.
    codec, slen = data[off], u32(data, off + 1)
    assert codec == 0 and slen == raw == stored - 5
    d.add(off, 1, "stream directory entry 0: `codec` = 0 (stored)")
    d.add(off + 1, 4, "stream directory entry 0: `length` = %d (stored bytes = L / S = %d / 1)"
          % (slen, raw))
    values = []
    for i in range(raw // 4):
        p = off + 5 + 4 * i
        v = struct.unpack_from("<f", data, p)[0]
        values.append(v)
        d.add(p, 4, "stream 0, element %d: F32 bits 0x%08x = %r" % (i, u32(data, p), v))
    assert crc32c(data[off + 5:off + 5 + raw]) == crc
    d.padding(off + stored, hoff, "zero padding up to the header's 64-byte boundary (0x%x)" % hoff)
    d.padding(64, off, "zero padding up to the chunk")
    assert not d.unclaimed(0, L), "unclaimed bytes: %r" % d.unclaimed(0, L)
    assert hoff + hlen == L
    pre_rows = d.table(0, 64)
    chunk_rows = d.table(64, hoff)

    # ---- Output file (spec 8) and content id (spec 6).
    tensor_bytes = data[off + 5:off + 5 + raw]
    rebuilt = prolog + tensor_bytes
    assert rebuilt == expected and hashlib.sha256(rebuilt).hexdigest() == case["expected"][0]["sha256"]
    jlen = u64(prolog, 0)
    leaf = hashlib.sha256(tensor_bytes).digest()
    digest = hashlib.sha256(leaf).digest()
    hashed = (b"CKZ content id v1" + struct.pack("<Q", 1) + struct.pack("<Q", len(name)) + name +
              bytes([2]) + struct.pack("<Q", len(shape)) + b"".join(struct.pack("<Q", x) for x in shape) +
              digest)
    cid = hashlib.sha256(hashed).digest()
    assert cid == content_id, "content id differs"

    out_dump = Dump(rebuilt)
    out_dump.add(0, 8, "safetensors header length N = %d (u64le)" % jlen)
    out_dump.add(8, jlen, "the JSON header, padded with spaces to a multiple of 8: `%s`"
                 % prolog[8:].decode("utf-8").replace("|", "\\|"))
    for i in range(3):
        out_dump.add(8 + jlen + 4 * i, 4, "tensor `weight`, element %d = %r" % (i, values[i]))

    cid_dump = Dump(hashed)
    pos = 0
    for length, text in [
            (17, "`\"CKZ content id v1\"` (17 ASCII bytes, no terminator)"),
            (8, "u64 N = 1 (number of tensors)"),
            (8, "u64 len(name) = %d" % len(name)),
            (len(name), "name bytes `%s`" % name.decode()),
            (1, "u8 dtype = 2 (F32)"),
            (8, "u64 ndim = 1"),
            (8, "u64 dim_0 = 3"),
            (32, "tensor digest = SHA-256(SHA-256(block 0)); the 12 bytes are one block")]:
        cid_dump.add(pos, length, text)
        pos += length
    assert pos == len(hashed)

    # ---- The document.
    md = []
    w = md.append
    w("# Worked example: the smallest CKZ file, byte by byte")
    w("")
    w("*Informative (for the appendix of spec/ckz.md). Generated by `conformance/worked_example.py`"
      " from the conformance case `%s`; do not edit by hand (ctest "
      "`conformance_worked_example_current` checks it).*" % CASE)
    w("")
    w("The checkpoint is one safetensors file, `%s`, holding one F32 tensor `%s` of shape [3] with "
      "the values [%s]. The CKZ file `input.ckz` (%d bytes) stores it in one chunk with one *stored* "
      "stream (no compression, no byte planes, no predictor), so every byte can be read by eye."
      % (exp_path, name.decode(), ", ".join(repr(v) for v in values), L))
    w("")
    w("## 1. Layout (spec section 5)")
    w("")
    w("| bytes | region |")
    w("|---|---|")
    w("| 0x0000..0x003f | preamble (64 bytes) |")
    w("| 0x%04x..0x%04x | chunk 0 of tensor `%s`: %d stored bytes |" % (off, off + stored - 1, name.decode(), stored))
    w("| 0x%04x..0x%04x | zero padding: the next region starts at align64(0x%x) = 0x%x |" % (
        off + stored, hoff - 1, off + stored, hoff))
    w("| 0x%04x..0x%04x | header: a FlatBuffers buffer of %d bytes; the file ends with it |" % (hoff, L - 1, hlen))
    w("")
    w("A streaming writer (like the reference) writes a placeholder preamble, then the chunks, "
      "then the header, and finally overwrites the preamble. Readers must not rely on this order.")
    w("")
    w("## 2. The preamble (spec section 2)")
    w("")
    w("All integers are little-endian. `preamble_crc32c` covers bytes 0..59, reserved fields included.")
    w("")
    w(pre_rows)
    w("")
    w("## 3. The chunk (spec section 7)")
    w("")
    w("`Tensor.byte_planes` is false, so the chunk has S = 1 stream; its stored bytes start with a "
      "5-byte stream directory (u8 codec, u32le length), then the stream. The stream is stored "
      "(codec 0): its %d bytes are the decoded bytes. There is no predictor, so they are the "
      "tensor's bytes: three little-endian binary32 values. CRC-32C of those %d bytes is 0x%08x, "
      "equal to `Chunk.crc32c` in the header." % (raw, raw, crc))
    w("")
    w(chunk_rows)
    w("")
    w("## 4. The header (spec section 4, schema/ckz.fbs)")
    w("")
    w("FlatBuffers in brief: the buffer starts with a u32 offset to the root table. A *table* starts "
      "with an i32 `soffset_t`; its *vtable* is at (table position − soffset). A vtable is u16 "
      "vtable size, u16 table size, then one u16 per field id (the declaration order in the "
      "schema): the field's offset from the start of the table, or 0 when the field is absent "
      "(the reader then uses the schema default). Offsets to strings, vectors and sub-tables "
      "(`uoffset_t`, u32) are relative to the position of the offset itself. A vector is a u32 "
      "element count followed by the elements; a string is a u32 byte count, the bytes and a "
      "NUL. Structs (`Chunk`) are stored inline in their vector. A vtable may have fewer slots than "
      "the table has fields: missing trailing slots also mean absent fields. A union field takes "
      "two field ids (its type, then its value). Writers may put objects in any "
      "order and share identical vtables; builders fill alignment gaps with zeros.")
    w("")
    w("'buffer offset' below is the position inside the header (`buf+0x..` in the text); the "
      "header starts at file offset 0x%x." % hoff)
    w("")
    w(header_rows)
    w("")
    w("Fields the writer left out take their defaults: `Header.step` (no step) and `Header.link` "
      "(a keyframe); `Tensor.role` Other, `Tensor.owner` -1, `Tensor.predictor` None, "
      "`Tensor.byte_planes` false. A writer may also store a default explicitly; a reader cannot "
      "tell the difference. The `writer` string is `%s` (informative)." % writer.decode())
    w("")
    w("Semantic checks (spec section 9) that this header passes: `content_id` has 32 bytes; no "
      "link and required bit 0 clear; the tensor name is valid (N1); dtype 2 is in range; shape "
      "[3] x 4 bytes = 12 bytes; one chunk with reserved 0, raw_length 12 (a multiple of 4), "
      "offset 0x%x (a multiple of 64, inside the file); the chunks cover the 12 bytes; the source "
      "file path `%s` obeys N2 and lists tensor 0, the only tensor; no metadata; the regions "
      "(preamble, chunk, header) do not overlap, each starts at the align64 of the previous end, "
      "the padding is zero and the file ends with the header." % (off, exp_path))
    w("")
    w("## 5. The decoded file (spec section 8)")
    w("")
    w("`Header.files[0]` is `%s`, format Safetensors, with a %d-byte `prolog` and `tensors` = [0]. "
      "The decoder writes the file at that path under its output folder: the prolog, then the "
      "decoded bytes of tensor 0. The result (%d bytes, SHA-256 `%s`) is the original safetensors "
      "file, byte for byte:" % (exp_path, len(prolog), len(rebuilt), hashlib.sha256(rebuilt).hexdigest()))
    w("")
    w(out_dump.table(0, len(rebuilt), column="offset in %s" % exp_path))
    w("")
    w("## 6. The content id (spec section 6)")
    w("")
    w("The tensor digest of `%s` (12 bytes: one block shorter than 1 MiB):" % name.decode())
    w("")
    w("```")
    w("SHA-256(block 0)         = %s" % leaf.hex())
    w("tensor digest = SHA-256(SHA-256(block 0))")
    w("                         = %s" % digest.hex())
    w("```")
    w("")
    w("The %d-byte string that is hashed (one tensor, so no sorting is visible):" % len(hashed))
    w("")
    w(cid_dump.table(0, len(hashed), column="offset"))
    w("")
    w("In one piece:")
    w("")
    w("```")
    for i in range(0, len(hashed), 32):
        w(hashed[i:i + 32].hex())
    w("```")
    w("")
    w("SHA-256 of it is the content id, which `Header.content_id` (at file offset 0x%x) holds:"
      % (hoff + [s for s, e, t in d.rows if "`Header.content_id`: 32 bytes" in t][0] - hoff))
    w("")
    w("```")
    w("content id = %s" % cid.hex())
    w("```")
    w("")
    w("A link to this checkpoint would carry these 32 bytes as `Link.parent_content_id`, and a "
      "reader would accept a file as its parent only if that file's `Header.content_id` is equal.")
    return "\n".join(md) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    args = p.parse_args()
    text = render()
    if args.check:
        try:
            with open(OUT, "rb") as f:
                current = f.read().decode("utf-8")
        except OSError:
            current = None
        if current != text:
            print("WORKED_EXAMPLE.md is not what worked_example.py makes from cases/%s; "
                  "regenerate it: python3 conformance/worked_example.py" % CASE)
            return 1
        print("WORKED_EXAMPLE.md is current")
        return 0
    with open(OUT, "wb") as f:
        f.write(text.encode("utf-8"))
    print("wrote %s" % OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
