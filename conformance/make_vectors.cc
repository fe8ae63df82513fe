// Writes the CKZ conformance vectors: conformance/cases/<name>/ and conformance/manifest.json.
//
//   make_vectors <conformance folder>
//
// The whole cases/ tree and manifest.json are rebuilt from fixed seeds; the output is the same
// bytes on every run and every machine (no time, no host random, no float arithmetic, no
// thread-count dependence: every coding choice of the encoder is forced). Vectors change only
// when the format (or a case) changes -- or when libzstd or FlatBuffers start writing other
// bytes for the same input, which the ctest `conformance_vectors_current` would then report.
//
// Every case is checked before it is written:
//  - a valid case is decoded by the reference library (ChainReader + RestoreFilesInto) from the
//    case folder; the files it produces must be exactly the checkpoint files the case was made
//    from (byte-identical), and VerifyChain must accept the content id. The expected/ files are
//    the decoded files.
//  - an invalid case must fail with the error it names, leaving no file behind.
//
// Valid files are written with the reference Writer (forced codings). Invalid files, and valid
// files with unusual layouts, are made by taking a valid file apart into a `Model` (its header
// structs plus each chunk's stored bytes), changing exactly one thing, and assembling it again.
#include <zstd.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "ckz/archive.h"
#include "ckz/checkpoint.h"
#include "ckz/content_id.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "ckz/safetensors.h"
#include "ckz/status.h"
#include "ckz/types.h"
#include "ckz/writer.h"
#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/float_model.h"
#include "common/range_coder.h"
#include "common/transforms.h"
#include "common/index_model.h"
#include "common/quantize.h"
#include "format/chunk_layout.h"
#include "common/sha256.h"
#include "format/header_build.h"
#include "ckz/torch.h"
#include "source_assembly.h"
#include "file_surgery.h"
#include "format/preamble.h"

namespace {

using namespace ckz;  // NOLINT: a small tool
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

constexpr char kWriterName[] = "ckz conformance vectors";
constexpr uint64_t kMaxSuiteBytes = 2u << 20;   // the whole suite
constexpr uint64_t kMaxCaseBytes = 48u << 10;   // one case folder

// ------------------------------------------------------------------------------------------
// Failing loudly.

[[noreturn]] void Die(const std::string& message) {
  fprintf(stderr, "make_vectors: %s\n", message.c_str());
  exit(1);
}
void Check(bool ok, const std::string& what) {
  if (!ok) Die(what);
}
void MustOk(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}
template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what + ": " + r.status().ToString());
  return std::move(r).value();
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}
std::string Sha256Hex(const Bytes& b) {
  const auto d = Sha256::Hash(b.data(), b.size());
  return Hex(d.data(), d.size());
}
uint64_t Align64(uint64_t x) { return (x + 63) / 64 * 64; }
Bytes Str(const std::string& s) { return Bytes(s.begin(), s.end()); }

// ------------------------------------------------------------------------------------------
// Deterministic data: splitmix64, integer arithmetic only (no <random> distributions, whose
// output differs between standard libraries).

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t s_;
};

uint64_t LoadElem(const uint8_t* p, size_t w) {
  uint64_t v = 0;
  for (size_t b = 0; b < w; ++b) v |= uint64_t(p[b]) << (8 * b);
  return v;
}
void StoreElem(uint8_t* p, size_t w, uint64_t v) {
  for (size_t b = 0; b < w; ++b) p[b] = uint8_t(v >> (8 * b));
}
uint64_t Mask(size_t w) { return w == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * w)) - 1; }

uint64_t Elements(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) {
    if (d == 0) return 0;
    n *= d;
  }
  return n;
}

// Element bit patterns that look like a trained tensor: floats of magnitude ~2^-9..2^-2 with
// random mantissas, small signed integers (now and then a large one), 0/1 bools.
Bytes Values(DType dtype, uint64_t n, uint64_t seed) {
  Rng r(seed);
  const size_t w = DTypeSize(dtype);
  Bytes out(n * w);
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t sign = r.Next() & 1;
    uint64_t v = 0;
    switch (dtype) {
      case DType::kF64:
        v = sign << 63 | uint64_t(1015 + r.Below(8)) << 52 | (r.Next() & ((uint64_t{1} << 52) - 1));
        break;
      case DType::kF32:
        v = sign << 31 | uint64_t(118 + r.Below(8)) << 23 | (r.Next() & 0x7FFFFF);
        break;
      case DType::kF16:
        v = sign << 15 | uint64_t(9 + r.Below(5)) << 10 | (r.Next() & 0x3FF);
        break;
      case DType::kBF16:
        v = sign << 15 | uint64_t(118 + r.Below(8)) << 7 | (r.Next() & 0x7F);
        break;
      case DType::kBool:
        v = r.Next() & 1;
        break;
      case DType::kU8:
        v = r.Below(8) == 0 ? r.Next() : r.Below(32);
        break;
      default:  // signed integers
        v = r.Below(16) == 0 ? r.Next() : uint64_t(int64_t(r.Below(2001)) - 1000);
        if (dtype == DType::kI8) v = uint64_t(int64_t(r.Below(201)) - 100);
        break;
    }
    StoreElem(out.data() + i * w, w, v & Mask(w));
  }
  return out;
}

// The next training step: float bit patterns moved by a few units in the last place, integers
// now and then by one or two, a few bools flipped.
Bytes NextStep(DType dtype, const Bytes& prev, uint64_t seed) {
  Rng r(seed);
  const size_t w = DTypeSize(dtype);
  Bytes out = prev;
  for (size_t i = 0; i + w <= out.size(); i += w) {
    uint64_t v = LoadElem(out.data() + i, w);
    if (dtype == DType::kBool) {
      if (r.Below(8) == 0) v ^= 1;
    } else if (DTypeIsFloat(dtype)) {
      v += r.Below(33) - 16;
    } else if (r.Below(4) == 0) {
      v += r.Below(5) - 2;
    }
    StoreElem(out.data() + i, w, v & Mask(w));
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Checkpoints: tensors plus the files they came from.

struct T {
  std::string name;
  DType dtype = DType::kInvalid;
  std::vector<uint64_t> shape;
  Bytes bytes;
  Role role = Role::kOther;
  int32_t owner = -1;
  bool predict = true;  // in a link: predicted from the parent's tensor of the same name
  // A quantized tensor (spec 7.6): its indices; `bytes` then holds the reconstruction.
  std::optional<QuantizationInfo> quant;
  Bytes indices;
  TensorSpec Spec() const { return TensorSpec{name, dtype, shape, role, owner}; }
};

T MakeT(const std::string& name, DType dtype, std::vector<uint64_t> shape, uint64_t seed,
        Role role = Role::kOther, int32_t owner = -1) {
  T t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes = Values(dtype, Elements(t.shape), seed);
  t.role = role;
  t.owner = owner;
  return t;
}

// A tensor given as element bit patterns.
T FromElems(const std::string& name, DType dtype, std::vector<uint64_t> shape,
            const std::vector<uint64_t>& elems) {
  T t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  const size_t w = DTypeSize(dtype);
  Check(Elements(t.shape) == elems.size(), "FromElems: shape and element count differ");
  t.bytes.resize(elems.size() * w);
  for (size_t i = 0; i < elems.size(); ++i) StoreElem(t.bytes.data() + i * w, w, elems[i]);
  return t;
}

struct SrcFile {
  std::string path;
  SourceFormat format = SourceFormat::kSafetensors;
  std::vector<std::string> tensors;  // safetensors: tensor names, in data order
  Bytes raw;                         // raw files: the whole file
  std::vector<std::pair<std::string, std::string>> st_metadata;  // safetensors "__metadata__"
  // Given instead of built (any non-Raw format): prolog, splits and CRC-32 patches; its
  // `tensors` is filled in from `tensors` above.
  std::optional<SourceFileInfo> layout;
};

struct Ckpt {
  std::vector<T> tensors;
  std::vector<SrcFile> files;
  std::optional<int64_t> step;
  std::vector<MetaEntry> metadata;

  size_t Index(const std::string& name) const {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].name == name) return i;
    Die("no tensor '" + name + "'");
  }
  const T* Find(const std::string& name) const {
    for (const T& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
};

// One safetensors file holding every tensor, in tensor order.
Ckpt Single(std::vector<T> tensors, const std::string& path = "model.safetensors") {
  Ckpt c;
  c.tensors = std::move(tensors);
  SrcFile f;
  f.path = path;
  for (const T& t : c.tensors) f.tensors.push_back(t.name);
  c.files.push_back(f);
  return c;
}

// Each tensor of `c` moved one training step.
Ckpt Next(const Ckpt& c, uint64_t seed) {
  Ckpt n = c;
  for (size_t i = 0; i < n.tensors.size(); ++i)
    n.tensors[i].bytes = NextStep(n.tensors[i].dtype, c.tensors[i].bytes, seed * 1000 + i);
  if (n.step) *n.step += 100;
  return n;
}

struct Sources {
  std::vector<SourceFileInfo> infos;
  std::map<std::string, Bytes> outputs;  // path -> the file's bytes: what decoding must give
};

Sources BuildSources(const Ckpt& c) {
  Sources s;
  for (const SrcFile& f : c.files) {
    SourceFileInfo info;
    info.path = f.path;
    info.format = f.format;
    Bytes out;
    if (f.format == SourceFormat::kRaw) {
      info.prolog = f.raw;
      out = f.raw;
    } else if (f.layout) {
      std::vector<uint32_t> indices;
      for (const std::string& name : f.tensors) indices.push_back(uint32_t(c.Index(name)));
      info = *f.layout;
      info.path = f.path;
      info.format = f.format;
      info.tensors = indices;
      out = testing::AssembleSourceFile(info, [&](size_t k) -> const Bytes& {
        return c.tensors[info.tensors[k]].bytes;
      });
    } else if (f.format == SourceFormat::kTorchZip) {
      // A torch.save state_dict (spec 8.2): the reference layout builder gives prolog, splits
      // and CRC-32 patches; the expected file comes from spec 8.1's assembly.
      std::vector<TorchTensorSpec> specs;
      std::vector<uint32_t> indices;
      for (const std::string& name : f.tensors) {
        const size_t i = c.Index(name);
        specs.push_back({name, c.tensors[i].dtype, c.tensors[i].shape});
        indices.push_back(uint32_t(i));
      }
      const std::string archive = fs::path(f.path).stem().string();
      info = Must(BuildTorchStateDictLayout(f.path, archive, specs, indices), f.path + ": layout");
      out = testing::AssembleSourceFile(info, [&](size_t k) -> const Bytes& {
        return c.tensors[info.tensors[k]].bytes;
      });
      auto parsed = Must(ParseTorchFile(ByteSpan(out)), f.path + ": not a torch.save file");
      Check(parsed.pickle.storages.size() == f.tensors.size(), f.path + ": storage count");
    } else {
      std::vector<SafetensorsEntry> entries;
      for (const std::string& name : f.tensors) {
        const size_t i = c.Index(name);
        entries.push_back({name, c.tensors[i].dtype, c.tensors[i].shape, 0, 0});
        info.tensors.push_back(uint32_t(i));
      }
      info.prolog = BuildSafetensorsProlog(entries, f.st_metadata);
      out = info.prolog;
      for (uint32_t i : info.tensors)
        out.insert(out.end(), c.tensors[i].bytes.begin(), c.tensors[i].bytes.end());
      // The expected output must be a real safetensors file with these tensors.
      auto parsed = Must(ParseSafetensors(ByteSpan(out)), f.path + ": not a safetensors file");
      Check(parsed.tensors.size() == f.tensors.size(), f.path + ": tensor count");
    }
    Check(!s.outputs.count(f.path), "two source files named " + f.path);
    s.outputs[f.path] = out;
    s.infos.push_back(std::move(info));
  }
  return s;
}

// ------------------------------------------------------------------------------------------
// Encoding with the reference Writer.

EncodeOptions Opt(StreamCodec codec, bool planes, uint64_t chunk = 1u << 20,
                  Predictor predictor = Predictor::kNone) {
  EncodeOptions o;
  o.threads = 1;
  o.chunk_bytes = chunk;
  o.zstd_level = 3;
  o.force_codec = codec;
  o.force_byte_planes = planes;
  o.force_predictor = predictor;
  o.prolog_codec = PrologCodec::kStored;  // cases that code prologs ask for it
  o.code_header = false;                  // cases that code the header ask for it (4.1)
  return o;
}

struct Encoded {
  Bytes bytes;
  ContentId id{};
};

// With a link, each tensor with `predict` set is predicted from the parent tensor of the same
// name (when the parent has one of the same byte length; its shape and dtype are deliberately
// not compared, so mismatches can be made).
Encoded Encode(const Ckpt& c, const EncodeOptions& options,
               const std::optional<LinkInfo>& link = std::nullopt, const Ckpt* parent = nullptr) {
  auto sink = std::make_unique<MemorySink>();
  MemorySink* mem = sink.get();
  Writer w(std::move(sink), options);
  w.SetWriterName(kWriterName);
  if (c.step) w.SetStep(*c.step);
  if (link) w.SetLink(*link);
  for (const MetaEntry& e : c.metadata) w.AddMetadata(e);
  // A ZstdParent prolog's history: the parent's file the reference writer picks, with its patch
  // bytes cleared as written.
  std::vector<SourceFileInfo> parent_files;
  if (link && parent) parent_files = BuildSources(*parent).infos;
  for (SourceFileInfo& f : parent_files) ClearCrc32PatchBytes(&f);
  const std::vector<SourceFileInfo> files = BuildSources(c).infos;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::optional<uint32_t> match = MatchingParentFile(files[i], i, parent_files);
    if (match && options.prolog_codec == PrologCodec::kZstdParent)
      w.AddSourceFile(files[i], ByteSpan(parent_files[*match].prolog), *match);
    else
      w.AddSourceFile(files[i]);
  }
  for (const T& t : c.tensors) {
    ByteSpan ref;
    if (link && parent && t.predict)
      if (const T* p = parent->Find(t.name))
        if (p->bytes.size() == t.bytes.size() && !p->bytes.empty()) ref = ByteSpan(p->bytes);
    if (t.quant) {
      // The cm codec's contexts (spec 7.7.2), as a decoder derives them; other index codecs
      // ignore them.
      IndexContexts cx;
      if (link && parent)
        if (const T* p = parent->Find(t.name))
          if (p->quant && p->dtype == t.dtype && p->shape == t.shape) {
            cx.parent = ByteSpan(p->indices);
            cx.parent_centres = uint32_t(p->quant->codebook.size());
          }
      std::vector<CmTensorRole> roles;
      for (const T& u : c.tensors) roles.push_back({u.role, u.owner, u.quant.has_value()});
      const int aux = CmAuxTensor(roles, size_t(&t - c.tensors.data()));
      if (aux >= 0) {
        cx.aux = ByteSpan(c.tensors[size_t(aux)].indices);
        cx.aux_centres = uint32_t(c.tensors[size_t(aux)].quant->codebook.size());
      }
      Bytes decoded(t.bytes.size());
      MustOk(w.AddQuantizedTensor(t.Spec(), *t.quant, ByteSpan(t.indices), ref,
                                  MutableByteSpan(decoded), cx),
             "AddQuantizedTensor '" + t.name + "'");
      Check(decoded == t.bytes, "'" + t.name + "': the writer reconstructs other bytes");
      continue;
    }
    MustOk(w.AddTensor(t.Spec(), ByteSpan(t.bytes), ref), "AddTensor '" + t.name + "'");
  }
  Encoded e;
  e.id = Must(w.Finish(), "Writer::Finish");
  e.bytes = std::move(mem->bytes());
  return e;
}

LinkInfo LinkTo(const Encoded& parent, const Ckpt& parent_ckpt, const std::string& hint,
                uint32_t depth) {
  LinkInfo l;
  l.parent_content_id = parent.id;
  l.parent_step = parent_ckpt.step;
  l.path_hint = hint;
  l.depth = depth;
  return l;
}

// ------------------------------------------------------------------------------------------
// Files taken apart and assembled again (for invalid files and unusual valid layouts).

using Tweaks = HeaderDeviations;

struct Model {
  uint16_t major = 0, minor = 1;
  uint64_t required = 0, optional = 0;
  uint32_t reserved0 = 0;
  uint64_t reserved1 = 0;
  Archive h;                               // header contents (chunk offsets are recomputed)
  std::vector<std::vector<Bytes>> stored;  // [tensor][chunk] stored bytes
  Tweaks tweaks;
  // Layout.
  bool header_first = false;    // header right after the preamble, chunks after it
  bool reverse_chunks = false;  // chunks in the reverse of tensor/chunk order
  std::map<std::pair<size_t, size_t>, uint64_t> gap_before;  // zero bytes before a chunk,
                                                             // after its 64-byte alignment
  uint64_t header_gap = 0;
  std::map<size_t, size_t> share_chunks;  // tensor -> tensor whose chunk ranges it points at
  std::function<void(Archive&)> edit;     // last changes to the header, after the layout
  // (0.6) The header region's bytes from the FlatBuffers buffer (a coded header, 4.1); unset:
  // the buffer itself. `required` is not touched.
  std::function<Bytes(const Bytes&)> code_header;
};

Bytes Assemble(const Model& m);
Bytes WriterHeaderFrame(const Bytes& header);

Model FromFile(const Bytes& file) {
  Archive a = Must(ParseArchive(ByteSpan(file)), "FromFile: not a valid file");
  Model m;
  m.major = a.preamble.major;
  m.minor = a.preamble.minor;
  m.required = a.preamble.required_features;
  m.optional = a.preamble.optional_features;
  m.reserved0 = LoadLE32(file.data() + 12);
  m.reserved1 = LoadLE64(file.data() + 52);
  m.stored.resize(a.tensors.size());
  for (size_t t = 0; t < a.tensors.size(); ++t)
    for (const ChunkInfo& c : a.tensors[t].chunks)
      m.stored[t].emplace_back(file.begin() + long(c.offset),
                               file.begin() + long(c.offset + c.stored_length));
  a.file = ByteSpan();
  m.h = std::move(a);
  if (m.required & kFeatureCodedHeader) m.code_header = WriterHeaderFrame;
  Check(Assemble(m) == file, "FromFile: reassembling an unchanged file gives other bytes "
                             "(the header builder or the layout changed?)");
  return m;
}

Bytes Assemble(const Model& m) {
  Archive h = m.h;
  std::vector<std::pair<size_t, size_t>> order;
  for (size_t t = 0; t < h.tensors.size(); ++t)
    if (!m.share_chunks.count(t))
      for (size_t c = 0; c < h.tensors[t].chunks.size(); ++c) order.push_back({t, c});
  if (m.reverse_chunks) std::reverse(order.begin(), order.end());

  Bytes file(kPreambleSize, 0);
  auto place = [&](const Bytes& bytes, uint64_t gap) {
    file.resize(Align64(file.size()) + gap, 0);
    const uint64_t offset = file.size();
    file.insert(file.end(), bytes.begin(), bytes.end());
    return offset;
  };
  // Chunks are structs of fixed size: the header's length does not depend on their offsets.
  const size_t header_len = BuildHeader(h, &m.tweaks).size();
  uint64_t header_offset = 0;
  if (m.header_first) header_offset = place(Bytes(header_len, 0), m.header_gap);
  for (const auto& [t, c] : order) {
    auto gap = m.gap_before.find({t, c});
    h.tensors[t].chunks[c].offset = place(m.stored[t][c], gap == m.gap_before.end() ? 0 : gap->second);
    h.tensors[t].chunks[c].stored_length = m.stored[t][c].size();
  }
  for (const auto& [t, src] : m.share_chunks) {
    Check(h.tensors[t].chunks.size() == h.tensors[src].chunks.size(), "share_chunks: counts");
    for (size_t c = 0; c < h.tensors[t].chunks.size(); ++c) {
      h.tensors[t].chunks[c].offset = h.tensors[src].chunks[c].offset;
      h.tensors[t].chunks[c].stored_length = h.tensors[src].chunks[c].stored_length;
    }
  }
  if (!m.header_first) {
    header_offset = Align64(file.size()) + m.header_gap;
    file.resize(header_offset, 0);
  }
  if (m.edit) m.edit(h);
  Bytes hdr = BuildHeader(h, &m.tweaks);
  if (m.code_header) {
    Check(!m.header_first, "Assemble: a coded header goes last");
    hdr = m.code_header(hdr);
  }
  if (m.header_first) {
    Check(hdr.size() == header_len, "Assemble: header length changed");
    std::copy(hdr.begin(), hdr.end(), file.begin() + long(header_offset));
  } else {
    file.insert(file.end(), hdr.begin(), hdr.end());
  }
  Preamble p;
  p.major = m.major;
  p.minor = m.minor;
  p.required_features = m.required;
  p.optional_features = m.optional;
  p.header_offset = header_offset;
  p.header_length = hdr.size();
  p.header_crc32c = Crc32c(hdr.data(), hdr.size());
  EncodePreamble(p, file.data());
  StoreLE32(file.data() + preamble_offset::kReserved0, m.reserved0);
  StoreLE64(file.data() + preamble_offset::kReserved1, m.reserved1);
  testing::FixPreambleCrc(file);
  return file;
}

uint64_t HeaderLength(const Bytes& f) { return LoadLE64(f.data() + preamble_offset::kHeaderLength); }
uint64_t HeaderOffset(const Bytes& f) { return LoadLE64(f.data() + preamble_offset::kHeaderOffset); }

// ------------------------------------------------------------------------------------------
// Hand-made chunks and zstd frames.

Bytes Zstd(const uint8_t* p, size_t n, bool checksum = false, bool content_size = true,
           int level = 3) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size ? 1 : 0);
  Bytes out(ZSTD_compressBound(n));
  const size_t r = ZSTD_compress2(c, out.data(), out.size(), p, n);
  ZSTD_freeCCtx(c);
  Check(!ZSTD_isError(r), "zstd compression failed");
  out.resize(r);
  return out;
}
Bytes Zstd(const Bytes& b, bool checksum = false, bool content_size = true) {
  return Zstd(b.data(), b.size(), checksum, content_size);
}

// The reference writer's coded header (Appendix A): zstd level 19, content size, no checksum.
Bytes WriterHeaderFrame(const Bytes& header) {
  return Zstd(header.data(), header.size(), false, true, 19);
}


// A chunk's stored bytes: the stream directory, then the streams.
Bytes MakeChunk(const std::vector<std::pair<StreamCodec, Bytes>>& streams) {
  Bytes out;
  for (const auto& [codec, bytes] : streams) {
    out.push_back(uint8_t(codec));
    uint8_t len[4];
    StoreLE32(len, uint32_t(bytes.size()));
    out.insert(out.end(), len, len + 4);
  }
  for (const auto& s : streams) out.insert(out.end(), s.second.begin(), s.second.end());
  return out;
}

// Byte planes of whole elements: plane p holds byte p of every element.
std::vector<Bytes> Planes(const uint8_t* p, size_t n, size_t w) {
  std::vector<Bytes> planes(w, Bytes(n / w));
  for (size_t i = 0; i < n / w; ++i)
    for (size_t b = 0; b < w; ++b) planes[b][i] = p[i * w + b];
  return planes;
}

// ------------------------------------------------------------------------------------------
// The suite: writes each case, checks it with the reference library, records the manifest.

std::string JsonStr(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    const uint8_t c = uint8_t(ch);
    if (c == '"') o += "\\\"";
    else if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o.push_back(ch);
    }
  }
  return o + "\"";
}

struct Case {
  std::string name;
  std::string profile;  // "core" or "full"
  std::string description;
  std::vector<std::string> features;
  std::vector<std::pair<std::string, Bytes>> files;  // "input.ckz" first, then parents etc.
  std::map<std::string, Bytes> expected;             // valid: path -> decoded file
  std::optional<ErrorCode> error;                    // invalid: the error it must produce
  std::string rule;                                  // invalid: the rule of spec/ckz.md it breaks
};

void WriteFile(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  Check(bool(f), "cannot write " + path.string());
}
Bytes ReadFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  Check(bool(f), "cannot read " + path.string());
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Every non-directory entry under `dir`, relative, '/'-separated, sorted.
std::map<std::string, Bytes> ListFiles(const fs::path& dir) {
  std::map<std::string, Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!e.is_directory()) out[fs::relative(e.path(), dir).generic_string()] = ReadFile(e.path());
  return out;
}

// Features seen in a valid file: dtypes, shapes, codecs, planes, predictors, chain depth,
// source files. Hand-given features are added to these.
std::set<std::string> FileFeatures(const Bytes& file) {
  std::set<std::string> f;
  Archive a = Must(ParseArchive(ByteSpan(file)), "FileFeatures");
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    const TensorInfo& ti = a.tensors[t];
    f.insert(std::string("dtype:") + DTypeName(ti.dtype));
    if (ti.shape.empty()) f.insert("shape:0-d");
    if (ti.byte_length == 0) f.insert("shape:empty");
    if (ti.chunks.size() > 1) f.insert("chunks:many");
    if (ti.byte_length > 0) f.insert(ti.byte_planes ? "byte-planes:on" : "byte-planes:off");
    if (ti.byte_length > 0) f.insert(std::string("predictor:") + PredictorName(ti.predictor));
    if (ti.role != Role::kOther) f.insert(std::string("role:") + RoleName(ti.role));
    if (ti.owner != -1) f.insert("owner");
    for (size_t c = 0; c < ti.chunks.size(); ++c)
      for (const StreamInfo& s : Must(ReadStreamDirectory(a, t, c), "stream directory"))
        f.insert(std::string("codec:") + StreamCodecName(s.codec));
  }
  if (a.link) f.insert("chain:depth-" + std::to_string(a.link->depth));
  if (!a.metadata.empty()) f.insert("metadata");
  if (a.step) f.insert("step");
  if (a.files.size() > 1) f.insert("files:many");
  for (const SourceFileInfo& s : a.files) {
    f.insert(std::string("source:") + SourceFormatName(s.format));
    if (s.path.find('/') != std::string::npos) f.insert("source:nested-path");
    if (s.prolog_codec != PrologCodec::kStored)
      f.insert(std::string("prolog:") + PrologCodecName(s.prolog_codec));
  }
  return f;
}

class Suite {
 public:
  explicit Suite(fs::path root) : root_(std::move(root)) {
    scratch_ = fs::temp_directory_path() / ("ckz_make_vectors_" + std::to_string(getpid()));
    fs::remove_all(scratch_);
    fs::remove_all(root_ / "cases");
    fs::remove(root_ / "manifest.json");
  }
  ~Suite() { fs::remove_all(scratch_); }

  void Add(Case c) {
    Check(names_.insert(c.name).second, "case name used twice: " + c.name);
    for (char ch : c.name)
      Check((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-',
            "case name must be [a-z0-9-]: " + c.name);
    Check(c.profile == "core" || c.profile == "full", c.name + ": profile");
    Check(!c.files.empty() && c.files[0].first == "input.ckz", c.name + ": input.ckz first");
    Check(c.error.has_value() == c.expected.empty(), c.name + ": valid xor invalid");
    const fs::path dir = root_ / "cases" / c.name;
    for (const auto& [name, bytes] : c.files) WriteFile(dir / name, bytes);

    std::set<std::string> features;
    if (c.error) {
      Check(!c.rule.empty(), c.name + ": an invalid case names its rule");
      features.insert("rule:" + c.rule);
      CheckInvalid(c, dir);
    } else {
      features = FileFeatures(c.files[0].second);
      bool chain = features.count("predictor:xor") + features.count("predictor:sub") > 0;
      for (const std::string& f : features) chain = chain || f.rfind("chain:", 0) == 0;
      Check(c.profile == "full" || !chain, c.name + ": a core case has no chain");
      CheckValid(c, dir);
      for (const auto& [path, bytes] : c.expected) WriteFile(dir / "expected" / path, bytes);
    }
    features.insert(c.features.begin(), c.features.end());
    c.features.assign(features.begin(), features.end());
    WriteFile(dir / "case.json", Str(Entry(c, "") + "\n"));
    entries_.push_back(Entry(c, "    "));
    uint64_t size = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file()) size += e.file_size();
    Check(size <= kMaxCaseBytes, c.name + ": case is " + std::to_string(size) + " bytes");
    total_ += size;
    ++counts_[c.profile + " " + (c.error ? "invalid" : "valid")];
  }

  void Finish() {
    std::string m = "{\n";
    m += "  \"format\": \"CKZ\",\n";
    m += "  \"format_version\": \"" + std::to_string(kFormatMajor) + "." +
         std::to_string(kFormatMinor) + "\",\n";
    m += "  \"spec\": \"spec/ckz.md\",\n";
    m += "  \"generator\": \"conformance/make_vectors.cc\",\n";
    m += "  \"profiles\": {\n";
    m += "    \"core\": " + JsonStr("container, stored and zstd streams, byte planes, zstd-coded prologs; keyframes only") + ",\n";
    m += "    \"full\": " + JsonStr("everything in format 0.6: core plus reference chains, predictors, quantized tensors, cm index streams, prologs coded against the parent's, cmf-coded float values and coded headers") + "\n";
    m += "  },\n";
    m += "  \"cases\": [\n";
    for (size_t i = 0; i < entries_.size(); ++i)
      m += entries_[i] + (i + 1 < entries_.size() ? ",\n" : "\n");
    m += "  ]\n}\n";
    WriteFile(root_ / "manifest.json", Str(m));
    total_ += m.size();
    Check(total_ <= kMaxSuiteBytes, "suite is " + std::to_string(total_) + " bytes");
    printf("make_vectors: %zu cases (", entries_.size());
    bool first = true;
    for (const auto& [k, n] : counts_) {
      printf("%s%s %d", first ? "" : ", ", k.c_str(), n);
      first = false;
    }
    printf("), %llu bytes, in %s\n", static_cast<unsigned long long>(total_),
           (root_ / "cases").string().c_str());
  }

 private:
  // Decodes the case like a user would: the input file in the case folder, its parents found
  // beside it, every source file written under an empty folder.
  Status Decode(const fs::path& dir, const fs::path& out, VerifyReport* report) {
    fs::remove_all(out);
    fs::create_directories(out);
    auto reader = ChainReader::Open((dir / "input.ckz").string());
    if (!reader.ok()) return reader.status();
    CKZ_RETURN_IF_ERROR(RestoreFilesInto(**reader, out.string(), "input.safetensors", {}));
    auto r = VerifyChain(**reader);
    if (!r.ok()) return r.status();
    if (report) *report = *r;
    return Status::Ok();
  }

  void CheckValid(const Case& c, const fs::path& dir) {
    const fs::path out = scratch_ / c.name;
    VerifyReport report;
    MustOk(Decode(dir, out, &report), c.name + ": the reference decoder rejects a valid case");
    const auto got = ListFiles(out);
    Check(got == c.expected,
          c.name + ": decoded files differ from the checkpoint files the case was made from");
    for (const auto& [name, bytes] : c.files)
      if (name != "input.ckz" && name.size() > 4 && name.substr(name.size() - 4) == ".ckz")
        Must(ParseArchive(ByteSpan(bytes)), c.name + ": " + name + " is not valid");
    fs::remove_all(out);
  }

  void CheckInvalid(const Case& c, const fs::path& dir) {
    const fs::path out = scratch_ / c.name;
    const Status s = Decode(dir, out, nullptr);
    Check(!s.ok(), c.name + ": the reference decoder accepts an invalid case");
    Check(s.code() == *c.error, c.name + ": expected " + ErrorCodeName(*c.error) + ", got " +
                                    s.ToString());
    Check(ListFiles(out).empty(), c.name + ": a rejected file left output behind");
    fs::remove_all(out);
  }

  std::string Entry(const Case& c, const std::string& ind) const {
    auto list = [](const std::vector<std::pair<std::string, const Bytes*>>& files,
                   const std::string& in) {
      std::string s = "[\n";
      for (size_t i = 0; i < files.size(); ++i)
        s += in + "    {\"path\": " + JsonStr(files[i].first) +
             ", \"size\": " + std::to_string(files[i].second->size()) + ", \"sha256\": \"" +
             Sha256Hex(*files[i].second) + "\"}" + (i + 1 < files.size() ? ",\n" : "\n");
      return s + in + "  ]";
    };
    std::string e = ind + "{\n";
    e += ind + "  \"name\": " + JsonStr(c.name) + ",\n";
    e += ind + "  \"profile\": " + JsonStr(c.profile) + ",\n";
    e += ind + "  \"kind\": " + JsonStr(c.error ? "invalid" : "valid") + ",\n";
    e += ind + "  \"description\": " + JsonStr(c.description) + ",\n";
    e += ind + "  \"features\": [";
    for (size_t i = 0; i < c.features.size(); ++i)
      e += (i ? ", " : "") + JsonStr(c.features[i]);
    e += "],\n";
    e += ind + "  \"input\": \"input.ckz\",\n";
    std::vector<std::pair<std::string, const Bytes*>> files;
    for (const auto& [name, bytes] : c.files) files.push_back({name, &bytes});
    e += ind + "  \"files\": " + list(files, ind) + ",\n";
    if (c.error) {
      e += ind + "  \"expected_error\": " + JsonStr(ErrorCodeName(*c.error)) + ",\n";
      e += ind + "  \"expected_error_code\": " + std::to_string(unsigned(*c.error)) + ",\n";
      e += ind + "  \"rule\": " + JsonStr(c.rule) + "\n";
    } else {
      std::vector<std::pair<std::string, const Bytes*>> exp;
      for (const auto& [path, bytes] : c.expected) exp.push_back({path, &bytes});
      e += ind + "  \"expected\": " + list(exp, ind) + "\n";
    }
    return e + ind + "}";
  }

  fs::path root_, scratch_;
  std::set<std::string> names_;
  std::vector<std::string> entries_;
  std::map<std::string, int> counts_;
  uint64_t total_ = 0;
};

// Shorthands for making cases.
Case Valid(const std::string& name, const std::string& profile, const std::string& description,
           const Ckpt& ckpt, const Bytes& input, std::vector<std::string> features = {}) {
  Case c;
  c.name = name;
  c.profile = profile;
  c.description = description;
  c.features = std::move(features);
  c.files.push_back({"input.ckz", input});
  c.expected = BuildSources(ckpt).outputs;
  return c;
}

Case Invalid(const std::string& name, const std::string& profile, const std::string& rule,
             ErrorCode error, const std::string& description, const Bytes& input,
             std::vector<std::string> features = {}) {
  Case c;
  c.name = name;
  c.profile = profile;
  c.rule = rule;
  c.error = error;
  c.description = description;
  c.features = std::move(features);
  c.files.push_back({"input.ckz", input});
  return c;
}

// ------------------------------------------------------------------------------------------
// Checkpoints used by several cases.

std::vector<T> EveryDtype(uint64_t seed) {
  return {
      MakeT("f64", DType::kF64, {3, 5}, seed + 1),  MakeT("f32", DType::kF32, {4, 6}, seed + 2),
      MakeT("f16", DType::kF16, {7, 3}, seed + 3),  MakeT("bf16", DType::kBF16, {11}, seed + 4),
      MakeT("i64", DType::kI64, {5}, seed + 5),     MakeT("i32", DType::kI32, {2, 2, 2}, seed + 6),
      MakeT("i16", DType::kI16, {13}, seed + 7),    MakeT("i8", DType::kI8, {17}, seed + 8),
      MakeT("u8", DType::kU8, {19}, seed + 9),      MakeT("bool", DType::kBool, {23}, seed + 10),
  };
}

// The base of most invalid cases: "a" (F32[40], a Weight, three chunks of 64, 64 and 32 bytes)
// and "b" (I64[4], one chunk), one safetensors file, all streams stored.
Ckpt BaseCkpt() {
  Ckpt c = Single({MakeT("a", DType::kF32, {40}, 11, Role::kWeight), MakeT("b", DType::kI64, {4}, 12)});
  c.step = 100;
  return c;
}
Bytes BaseFile(StreamCodec codec = StreamCodec::kStored, bool planes = false) {
  return Encode(BaseCkpt(), Opt(codec, planes, 64)).bytes;
}

// A keyframe and a link predicted from it (XorRef, stored streams, 64-byte chunks), for the
// chain rules. Files: input.ckz (the link) and parent-1.ckz.
struct BaseChain {
  Ckpt parent, child;
  Encoded p, c;
};
BaseChain MakeBaseChain(Predictor predictor = Predictor::kXorRef) {
  BaseChain b;
  b.parent = BaseCkpt();
  b.child = Next(b.parent, 5);
  b.p = Encode(b.parent, Opt(StreamCodec::kStored, false, 64));
  b.c = Encode(b.child, Opt(StreamCodec::kStored, false, 64, predictor),
               LinkTo(b.p, b.parent, "parent-1.ckz", 1), &b.parent);
  return b;
}
Case ChainInvalid(const std::string& name, const std::string& rule, ErrorCode error,
                  const std::string& description, const Bytes& input, const Bytes& parent,
                  std::vector<std::string> features = {}) {
  Case c = Invalid(name, "full", rule, error, description, input, std::move(features));
  c.files.push_back({"parent-1.ckz", parent});
  return c;
}

// A chain written level by level: levels[0] is the keyframe, each next one a link to the one
// before. Returns the encoded files, keyframe first.
struct Level {
  Ckpt ckpt;
  EncodeOptions options;
};
std::vector<Encoded> WriteChain(const std::vector<Level>& levels,
                                const std::vector<std::string>& names) {
  std::vector<Encoded> out;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (i == 0) {
      out.push_back(Encode(levels[0].ckpt, levels[0].options));
    } else {
      out.push_back(Encode(levels[i].ckpt, levels[i].options,
                           LinkTo(out[i - 1], levels[i - 1].ckpt, names[i - 1], uint32_t(i)),
                           &levels[i - 1].ckpt));
    }
  }
  return out;
}

// The case files of a chain: the last level is input.ckz, level n-1-k is parent-k.ckz.
std::vector<std::string> ChainNames(size_t levels) {
  std::vector<std::string> names(levels);
  for (size_t i = 0; i < levels; ++i)
    names[i] = i + 1 == levels ? "input.ckz" : "parent-" + std::to_string(levels - 1 - i) + ".ckz";
  return names;
}

Case ChainCase(const std::string& name, const std::string& description,
               const std::vector<Level>& levels, std::vector<std::string> features = {}) {
  const auto names = ChainNames(levels.size());
  const auto files = WriteChain(levels, names);
  Case c = Valid(name, "full", description, levels.back().ckpt, files.back().bytes,
                 std::move(features));
  for (size_t i = levels.size() - 1; i-- > 0;) c.files.push_back({names[i], files[i].bytes});
  return c;
}

// ------------------------------------------------------------------------------------------
// Core profile: valid files.

void CoreValid(Suite& s) {
  {
    // The worked example of WORKED_EXAMPLE.md: three F32 values with exact bit patterns.
    Ckpt c = Single({FromElems("weight", DType::kF32, {3}, {0x3F800000, 0xC0000000, 0x3F000000})});
    s.Add(Valid("core-smallest-f32-stored", "core",
                "The smallest useful file: one F32 tensor 'weight' of shape [3] = [1.0, -2.0, 0.5], "
                "one chunk with one stored stream, no byte planes, one safetensors source file. "
                "conformance/WORKED_EXAMPLE.md annotates it byte by byte.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"worked-example"}));
  }
  struct Variant {
    const char* name;
    StreamCodec codec;
    bool planes;
    const char* what;
  };
  const Variant variants[] = {
      {"core-every-dtype-stored", StreamCodec::kStored, false, "stored streams, no byte planes"},
      {"core-every-dtype-zstd", StreamCodec::kZstd, false, "zstd streams, no byte planes"},
      {"core-every-dtype-planes-stored", StreamCodec::kStored, true,
       "stored streams, byte planes (one stream per byte of the element; a single stream for "
       "the 1-byte dtypes)"},
      {"core-every-dtype-planes-zstd", StreamCodec::kZstd, true,
       "zstd streams, byte planes (one stream per byte of the element)"},
  };
  uint64_t seed = 100;
  for (const Variant& v : variants) {
    Ckpt c = Single(EveryDtype(seed += 20));
    s.Add(Valid(v.name, "core",
                std::string("One tensor of every dtype (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL), "
                            "1-d to 3-d, one chunk each; ") + v.what + ".",
                c, Encode(c, Opt(v.codec, v.planes)).bytes));
  }
  {
    Ckpt c = Single({MakeT("layer.weight", DType::kF32, {32, 32}, 201, Role::kWeight),
                     MakeT("layer.bias", DType::kF32, {32}, 202, Role::kWeight)});
    s.Add(Valid("core-f32-planes-zstd", "core",
                "F32 weights with byte planes and zstd streams (the usual coding of a keyframe), "
                "1000-byte chunks: 'layer.weight' (4096 bytes) has 5 chunks of 1000,1000,1000,1000,96 bytes.",
                c, Encode(c, Opt(StreamCodec::kZstd, true, 1000)).bytes));
  }
  {
    Ckpt c = Single({MakeT("scalar.f32", DType::kF32, {}, 301), MakeT("scalar.i64", DType::kI64, {}, 302),
                     MakeT("scalar.bool", DType::kBool, {}, 303), MakeT("empty.f32", DType::kF32, {0}, 304),
                     MakeT("empty.4x0", DType::kF16, {4, 0}, 305), MakeT("empty.0x3x2", DType::kI8, {0, 3, 2}, 306),
                     MakeT("scalar.bf16", DType::kBF16, {}, 307), MakeT("ones", DType::kU8, {1, 1, 1}, 308)});
    s.Add(Valid("core-empty-and-0d", "core",
                "0-d tensors (shape [], one element), tensors with a zero dimension (no bytes, no "
                "chunks) and a [1,1,1] tensor, in one safetensors file; byte planes, zstd.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes));
  }
  {
    Ckpt c = Single({MakeT("huge.but.empty", DType::kF32, {uint64_t{1} << 40, uint64_t{1} << 40, 0}, 311),
                     MakeT("x", DType::kF32, {2}, 312)});
    s.Add(Valid("core-empty-with-huge-dims", "core",
                "A tensor of shape [2^40, 2^40, 0]: its element count is 0, so its byte length is 0 "
                "and it is valid (rule T3 is about the product, whatever the order of the factors: "
                "a reader must not report ShapeOverflow because 2^40 x 2^40 overflows before the 0).",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"shape:zero-dim-overflow-order"}));
  }
  {
    Ckpt c = Single({MakeT("w", DType::kF32, {1000}, 401), MakeT("steps", DType::kI16, {301}, 402),
                     MakeT("d", DType::kF64, {5}, 403)});
    // chunk_bytes 60: whole elements -> F32 60 bytes (15 elements), I16 60, F64 56.
    s.Add(Valid("core-many-chunks", "core",
                "Tensors split into many small chunks (60-byte target, rounded down to whole "
                "elements: F32 60 bytes = 67 chunks, I16 60 bytes = 11 chunks, F64 56 bytes = 1 "
                "chunk of 40 bytes); stored streams, so chunk ends fall at every padding length.",
                c, Encode(c, Opt(StreamCodec::kStored, false, 60)).bytes));
    Ckpt d = Single({MakeT("w", DType::kF64, {5}, 411), MakeT("h", DType::kF16, {3}, 412),
                     MakeT("b", DType::kBool, {4}, 413)});
    s.Add(Valid("core-one-element-chunks", "core",
                "Every chunk holds exactly one element (chunk size 1 byte, raised to one element); "
                "byte planes with zstd streams.",
                d, Encode(d, Opt(StreamCodec::kZstd, true, 1)).bytes));
    Ckpt z = Single({MakeT("w", DType::kF32, {600}, 421), MakeT("i", DType::kI32, {300}, 422)});
    s.Add(Valid("core-many-chunks-zstd-planes", "core",
                "Tensors of many chunks (256-byte target) with byte planes and zstd streams.",
                z, Encode(z, Opt(StreamCodec::kZstd, true, 256)).bytes));
  }
  {
    Ckpt c;
    c.tensors = {MakeT("lm_head.weight", DType::kF32, {4, 8}, 501, Role::kWeight),
                 MakeT("embed.weight", DType::kF32, {8, 4}, 502, Role::kWeight),
                 MakeT("layers.1.weight", DType::kF16, {4, 4}, 503, Role::kWeight),
                 MakeT("layers.0.bias", DType::kBF16, {4}, 504, Role::kWeight),
                 MakeT("layers.0.weight", DType::kF16, {4, 4}, 505, Role::kWeight),
                 MakeT("position_ids", DType::kI64, {1, 6}, 506)};
    SrcFile s1, s2, idx;
    s1.path = "model-00001-of-00002.safetensors";
    s1.tensors = {"embed.weight", "layers.0.bias", "layers.0.weight"};
    s1.st_metadata = {{"format", "pt"}};
    s2.path = "model-00002-of-00002.safetensors";
    s2.tensors = {"layers.1.weight", "lm_head.weight", "position_ids"};
    s2.st_metadata = {{"format", "pt"}};
    idx.path = "model.safetensors.index.json";
    idx.format = SourceFormat::kRaw;
    idx.raw = Str(
        "{\n  \"metadata\": {\n    \"total_size\": 504\n  },\n  \"weight_map\": {\n"
        "    \"embed.weight\": \"model-00001-of-00002.safetensors\",\n"
        "    \"layers.0.bias\": \"model-00001-of-00002.safetensors\",\n"
        "    \"layers.0.weight\": \"model-00001-of-00002.safetensors\",\n"
        "    \"layers.1.weight\": \"model-00002-of-00002.safetensors\",\n"
        "    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
        "    \"position_ids\": \"model-00002-of-00002.safetensors\"\n  }\n}\n");
    c.files = {idx, s1, s2};
    s.Add(Valid("core-sharded-two-files", "core",
                "A Hugging Face sharded checkpoint: two safetensors shards plus the raw "
                "model.safetensors.index.json. The header's tensor order differs from the order "
                "of the files and of each file's tensors: a file's bytes follow its own 'tensors' "
                "list. Byte planes, zstd.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes, {"source:sharded"}));
  }
  {
    Ckpt c;
    c.tensors = {MakeT("a", DType::kF32, {5}, 601), MakeT("b", DType::kI32, {3}, 602),
                 MakeT("c", DType::kU8, {7}, 603)};
    SrcFile cfg, part, deep, empty, readme;
    cfg.path = "config.json";
    cfg.format = SourceFormat::kRaw;
    cfg.raw = Str("{\"hidden_size\": 5, \"architectures\": [\"Toy\"]}\n");
    part.path = "model/part.safetensors";
    part.tensors = {"b", "a"};
    deep.path = "model/deep/er/other.safetensors";
    deep.tensors = {"c"};
    empty.path = "empty.txt";
    empty.format = SourceFormat::kRaw;
    readme.path = "docs/README";
    readme.format = SourceFormat::kRaw;
    readme.raw = Str("raw bytes, kept verbatim:\r\n\x01\x02\xff\n");
    c.files = {cfg, part, deep, empty, readme};
    s.Add(Valid("core-nested-paths-and-raw-files", "core",
                "Source files in nested folders (model/deep/er/...), raw files kept verbatim "
                "(including CR LF and non-UTF-8 bytes) and an empty raw file (a 0-byte output "
                "file). Stored streams.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"source:empty-file"}));
  }
  {
    Ckpt c;
    SrcFile cfg, st;
    cfg.path = "config.json";
    cfg.format = SourceFormat::kRaw;
    cfg.raw = Str("{}\n");
    st.path = "model.safetensors";
    c.files = {cfg, st};
    s.Add(Valid("core-no-tensors", "core",
                "A checkpoint with no tensors: a raw config.json and a safetensors file holding no "
                "tensor (its prolog is the whole file). The content id covers zero tensors.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"tensors:none"}));
  }
  {
    Ckpt c = Single({MakeT("fc.weight", DType::kF32, {4, 3}, 651, Role::kWeight),
                     MakeT("fc.bias", DType::kF32, {4}, 652, Role::kWeight),
                     MakeT("steps", DType::kI64, {}, 653), MakeT("half", DType::kF16, {5}, 654),
                     MakeT("mask", DType::kBool, {3}, 655), MakeT("empty", DType::kF32, {0, 2}, 656)},
                    "model.pt");
    c.files[0].format = SourceFormat::kTorchZip;
    s.Add(Valid("core-torch-zip", "core",
                "A PyTorch torch.save file (format 0.2 TorchZip): the zip's bytes other than the "
                "storages are the prolog; each storage's data goes in at its split; the zip "
                "CRC-32 of each storage is written at its patches (data descriptor and central "
                "directory; the local header for the empty storage). The output is the file "
                "torch.save writes for this OrderedDict. Byte planes, zstd.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes,
                {"source:torch-zip", "source:splits", "source:crc32-patches"}));
  }
  {
    // Spec 8.1: "a tensor whose split equals q comes before prolog byte q", for a CRC-32 patch
    // at a split (q = 0) and at a run of three equal splits (q = 12), one tensor of it empty.
    Ckpt c = Single({MakeT("a", DType::kF32, {3}, 661), MakeT("b", DType::kF16, {5}, 662),
                     MakeT("c", DType::kBF16, {3}, 663), MakeT("e", DType::kF32, {0, 4}, 664),
                     MakeT("d", DType::kI32, {2}, 665)},
                    "patched.bin");
    SourceFileInfo lay;
    const std::string text = std::string(4, '\0') + "--mid1--" + std::string(4, '\0') +
                             "mid2EEEEtail" + std::string(4, '\0');
    lay.prolog.assign(text.begin(), text.end());
    Check(lay.prolog.size() == 32, "patch-at-split prolog");
    lay.splits = {0, 12, 12, 12, 32};
    lay.crc32_patches = {{0, 1}, {12, 0}, {20, 3}, {28, 4}};
    c.files[0].format = SourceFormat::kTorchZip;
    c.files[0].layout = lay;
    // Spec 8.1 here, independently of the library, with the patch placed after the tensors
    // whose split is <= q (mode 0, the spec), only < q (1), or < q plus the first tensor of a
    // run of splits equal to q (2).
    auto assemble = [&](int mode) {
      std::vector<const Bytes*> t;
      for (const std::string& name : c.files[0].tensors) t.push_back(&c.Find(name)->bytes);
      Bytes out;
      uint64_t pos = 0;
      for (size_t k = 0; k < t.size(); ++k) {
        out.insert(out.end(), lay.prolog.begin() + pos, lay.prolog.begin() + lay.splits[k]);
        out.insert(out.end(), t[k]->begin(), t[k]->end());
        pos = lay.splits[k];
      }
      out.insert(out.end(), lay.prolog.begin() + pos, lay.prolog.end());
      for (const Crc32Patch& patch : lay.crc32_patches) {
        const uint64_t q = patch.prolog_offset;
        uint64_t x = q;
        bool first = true;
        for (size_t j = 0; j < t.size(); ++j) {
          const bool at = lay.splits[j] == q;
          if (lay.splits[j] < q || (at && (mode == 0 || (mode == 2 && first))))
            x += t[j]->size();
          if (at) first = false;
        }
        StoreElem(out.data() + x, 4, ZipCrc32(ByteSpan(*t[patch.tensor])));
      }
      return out;
    };
    const Bytes spec = assemble(0);
    Check(BuildSources(c).outputs.at("patched.bin") == spec,
          "patch at a split: the file differs from spec 8.1's assembly");
    Check(assemble(1) != spec, "patch at a split: placing tensors after byte q changes nothing");
    Check(assemble(2) != spec, "patch at a split: only the run's first tensor changes nothing");
    s.Add(Valid("core-crc32-patch-at-split", "core",
                "Spec 8.1: a tensor whose split equals a CRC-32 patch's prolog_offset q comes "
                "BEFORE prolog byte q, so the patch lands after it (X = q + the lengths of every "
                "tensor with split <= q). One source file 'patched.bin' (format TorchZip as a "
                "label only; the prolog is 32 bytes: 4 zero bytes, '--mid1--', 4 zero bytes, "
                "'mid2EEEEtail', 4 zero bytes, not a zip), tensors a (F32 [3], split 0), b (F16 "
                "[5], split 12), c (BF16 [3], split 12), e (F32 [0, 4], empty, split 12), d (I32 "
                "[2], split 32 = the prolog's length). Patches: q = 0 with b's CRC-32 (at a's "
                "split: written at file offset 12, after a's 12 bytes); q = 12 with a's CRC-32 "
                "(at the run of equal splits of b, c, e: written after all three, at 12 + 12 + "
                "10 + 6 = 40, not after b alone); q = 20 with e's (empty: 0x00000000 over 'EEEE'); "
                "q = 28 with d's (just before d). The file is 32 + 12 + 10 + 6 + 0 + 8 = 68 "
                "bytes. Stored streams.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes,
                {"source:splits", "source:crc32-patches", "source:crc32-patch-at-split",
                 "shape:empty"}));
  }
  {
    Ckpt c = Single({MakeT("w", DType::kF32, {6}, 701, Role::kWeight)});
    c.files[0].st_metadata = {{"format", "pt"}, {"note", "metadata \"quoted\" \\ and \xc3\xa9"}};
    c.step = 1000;
    double lr, nan;
    const uint64_t lr_bits = 0x3F33A92A30553261ull, nan_bits = 0x7FF8000000000123ull;
    std::memcpy(&lr, &lr_bits, 8);
    std::memcpy(&nan, &nan_bits, 8);
    c.metadata = {{"framework", std::string("pytorch 2.1")}, {"learning_rate", lr},
                  {"epoch", int64_t{7}},                     {"offset", int64_t{-5}},
                  {"rng_state", std::vector<uint8_t>{0, 1, 2, 254, 255}},
                  {"resumed", true},                         {"nan_payload", nan},
                  {"empty", std::string()}};
    s.Add(Valid("core-metadata-every-type", "core",
                "Header metadata of every value type (int, float with a NaN payload, string, "
                "bytes, bool), a step, and safetensors __metadata__ in the prolog. Header metadata "
                "does not change the decoded files.",
                c, Encode(c, Opt(StreamCodec::kZstd, false)).bytes, {"metadata:every-type"}));
  }
  {
    Ckpt c;
    c.tensors = {MakeT("fc.weight", DType::kF32, {4, 3}, 801, Role::kWeight),
                 MakeT("fc.bias", DType::kF32, {3}, 802, Role::kWeight),
                 MakeT("fc.weight.exp_avg", DType::kF32, {4, 3}, 803, Role::kMoment1, 0),
                 MakeT("fc.weight.exp_avg_sq", DType::kF32, {4, 3}, 804, Role::kMoment2, 0),
                 MakeT("fc.bias.exp_avg", DType::kF32, {3}, 805, Role::kMoment1, 1),
                 MakeT("fc.bias.exp_avg_sq", DType::kF32, {3}, 806, Role::kMoment2, 1),
                 MakeT("other.momentum_buffer", DType::kF32, {2}, 807, Role::kMoment1, -1),
                 MakeT("step", DType::kI64, {}, 808)};
    SrcFile m, o;
    m.path = "model.safetensors";
    m.tensors = {"fc.bias", "fc.weight"};
    o.path = "optimizer.safetensors";
    o.tensors = {"fc.weight.exp_avg", "fc.weight.exp_avg_sq", "fc.bias.exp_avg",
                 "fc.bias.exp_avg_sq", "other.momentum_buffer", "step"};
    c.files = {m, o};
    s.Add(Valid("core-roles-and-owners", "core",
                "Weights, Adam moments owned by their weights (owner = index of the weight), a "
                "moment of unknown owner (-1) and a scalar; model and optimizer in two files.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes));
  }
  {
    Ckpt c;
    const std::vector<std::string> names = {
        "layer.0.weight", "Zeta", "alpha", "\xc3\xa9", "\xc3\xa4.bias", "\xe2\x82\xac",
        "\xef\xbd\x9e", "\xf0\x9f\x98\x80", "quote\"back\\slash", "tab\there\nnewline",
        "space name", "../not/a/path", "/also:fine"};
    uint64_t k = 900;
    for (const std::string& n : names) c.tensors.push_back(MakeT(n, DType::kF32, {2}, ++k));
    SrcFile f;
    f.path = "model.safetensors";
    for (auto it = names.rbegin(); it != names.rend(); ++it) f.tensors.push_back(*it);
    c.files = {f};
    s.Add(Valid("core-unicode-and-odd-names", "core",
                "Tensor names with 2-, 3- and 4-byte UTF-8 (U+00E9, U+20AC, U+FF5E, U+1F600), JSON "
                "escapes, control characters, spaces, and path-like text (tensor names are not "
                "paths). The content id sorts names by their UTF-8 bytes: U+FF5E (EF BD 9E) comes "
                "before U+1F600 (F0 9F 98 80), unlike in UTF-16 order.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"names:unicode"}));
  }
  {
    Ckpt c = Single({MakeT(std::string(4096, 'n'), DType::kF32, {2}, 951), MakeT("short", DType::kU8, {3}, 952)});
    s.Add(Valid("core-name-4096-bytes", "core",
                "A tensor name of exactly 4096 bytes, the longest allowed (rule N1).",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"names:max-length"}));
  }
  {
    Ckpt c = Single({
        FromElems("f32", DType::kF32, {14},
                  {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001,
                   0x7F800001, 0x7FBFFFFF, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0x3F800000,
                   0x7FC0DEAD, 0xFFFFFFFF}),
        FromElems("f16", DType::kF16, {10},
                  {0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE01, 0x7C01, 0x0001, 0x83FF, 0x7BFF}),
        FromElems("bf16", DType::kBF16, {10},
                  {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x0001, 0x807F, 0x7F7F}),
        FromElems("f64", DType::kF64, {9},
                  {0x0ull, 0x8000000000000000ull, 0x7FF0000000000000ull, 0xFFF0000000000000ull,
                   0x7FF8000000000000ull, 0x7FF0000000000001ull, 0x0000000000000001ull,
                   0x7FEFFFFFFFFFFFFFull, 0xFFF8DEADBEEF0001ull}),
    });
    s.Add(Valid("core-special-floats", "core",
                "Signed zeros, infinities, quiet and signalling NaNs with payloads, subnormals and "
                "extremes of F32, F16, BF16 and F64: decoding handles bit patterns, never values. "
                "Byte planes, zstd.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes, {"floats:special"}));
  }
  // Layouts other than the streaming writer's.
  {
    Ckpt c = Single({MakeT("a", DType::kF32, {40}, 1001), MakeT("b", DType::kI16, {50}, 1002),
                     MakeT("c", DType::kU8, {9}, 1003)});
    const Bytes file = Encode(c, Opt(StreamCodec::kZstd, false, 64)).bytes;
    Model m = FromFile(file);
    m.header_first = true;
    s.Add(Valid("core-layout-header-first", "core",
                "The header right after the preamble, the chunks after it (section 5: the order of "
                "regions is free; readers must not assume the header is last).",
                c, Assemble(m), {"layout:header-first"}));
    Model r = FromFile(file);
    r.reverse_chunks = true;
    s.Add(Valid("core-layout-chunks-reversed", "core",
                "Chunks stored in the reverse of their tensor and chunk order (the last chunk of "
                "the last tensor first), the header last.",
                c, Assemble(r), {"layout:chunks-reversed"}));
  }
  {
    // Per-stream codec choice inside one chunk: planes 0 and 1 stored, planes 2 and 3 zstd.
    Ckpt c = Single({MakeT("w", DType::kF32, {64}, 1101), MakeT("d", DType::kF64, {16}, 1102)});
    Model m = FromFile(Encode(c, Opt(StreamCodec::kStored, true, 128)).bytes);
    for (size_t t = 0; t < m.h.tensors.size(); ++t) {
      const TensorInfo& ti = m.h.tensors[t];
      const size_t w = DTypeSize(ti.dtype);
      for (size_t k = 0; k < ti.chunks.size(); ++k) {
        const ChunkInfo& ch = ti.chunks[k];
        const auto planes = Planes(c.tensors[t].bytes.data() + ch.raw_offset, ch.raw_length, w);
        std::vector<std::pair<StreamCodec, Bytes>> streams;
        for (size_t p = 0; p < w; ++p) {
          if ((p + k) % 2 == 0) streams.push_back({StreamCodec::kStored, planes[p]});
          else streams.push_back({StreamCodec::kZstd, Zstd(planes[p])});
        }
        m.stored[t][k] = MakeChunk(streams);
      }
    }
    s.Add(Valid("core-mixed-stream-codecs", "core",
                "Byte-plane chunks whose streams use different codecs: in each chunk, stored and "
                "zstd streams alternate (the codec is chosen per stream, section 7.1).",
                c, Assemble(m), {"codec:mixed-in-chunk"}));
  }
  {
    // zstd frames in the forms a writer may produce: with or without checksum, without the
    // content size, raw and RLE blocks.
    Ckpt c = Single({MakeT("w", DType::kF32, {96}, 1201), MakeT("constant", DType::kU8, {200}, 1202),
                     MakeT("noise", DType::kU8, {150}, 1203)});
    std::fill(c.tensors[1].bytes.begin(), c.tensors[1].bytes.end(), 7);
    Rng r(1204);
    for (uint8_t& b : c.tensors[2].bytes) b = uint8_t(r.Next());
    Model m = FromFile(Encode(c, Opt(StreamCodec::kZstd, false, 128)).bytes);
    auto data = [&](size_t t, size_t k) {
      const ChunkInfo& ch = m.h.tensors[t].chunks[k];
      return Bytes(c.tensors[t].bytes.begin() + long(ch.raw_offset),
                   c.tensors[t].bytes.begin() + long(ch.raw_offset + ch.raw_length));
    };
    m.stored[0][0] = MakeChunk({{StreamCodec::kZstd, Zstd(data(0, 0), true, true)}});
    m.stored[0][1] = MakeChunk({{StreamCodec::kZstd, Zstd(data(0, 1), false, false)}});
    m.stored[0][2] = MakeChunk({{StreamCodec::kZstd, Zstd(data(0, 2), true, false)}});
    s.Add(Valid("core-zstd-frame-variants", "core",
                "zstd streams in every form section 7.2 allows: with a frame checksum (which must be "
                "checked), without the frame content size, both; an RLE block (constant bytes) and "
                "raw blocks (random bytes that zstd cannot shrink).",
                c, Assemble(m), {"zstd:checksum", "zstd:no-content-size", "zstd:rle-block", "zstd:raw-block"}));
  }
  // Forward compatibility: what a reader of this version must accept.
  {
    Ckpt c = BaseCkpt();
    const Bytes file = Encode(c, Opt(StreamCodec::kZstd, true, 64)).bytes;
    Model o = FromFile(file);
    o.optional = (uint64_t{1} << 0) | (uint64_t{1} << 17) | (uint64_t{1} << 63);
    s.Add(Valid("valid-unknown-optional-feature", "core",
                "Optional feature bits 0, 17 and 63 set, none of them defined in 0.3: a reader "
                "MUST ignore unknown optional bits and decode the file (section 12).",
                c, Assemble(o), {"feature-bits:optional"}));
    Model v = FromFile(file);
    v.minor = 7;
    s.Add(Valid("valid-newer-minor-version", "core",
                "Minor version 7 (a later 0.x): a reader MUST accept any minor version of its major "
                "version (section 12).",
                c, Assemble(v), {"version:minor"}));
    Model r = FromFile(file);
    r.reserved0 = 0xDEADBEEF;
    r.reserved1 = 0x0123456789ABCDEFull;
    s.Add(Valid("valid-nonzero-reserved-preamble-fields", "core",
                "reserved0 and reserved1 of the preamble are not zero (the preamble CRC covers "
                "them): readers ignore them (section 2).",
                c, Assemble(r), {"preamble:reserved"}));
    Model u = FromFile(file);
    u.tweaks.unknown_fields = true;
    s.Add(Valid("valid-unknown-header-fields", "core",
                "Header and Tensor tables carry fields a later minor version might append (Header "
                "field ids 7 and 12, Tensor field ids 8 and 9): readers ignore fields they do not know "
                "(section 12, schema evolution).",
                c, Assemble(u), {"schema:unknown-fields"}));
  }
}

// ------------------------------------------------------------------------------------------
// Core profile: invalid files, one broken rule each (the first one in the order of section 9).

void CoreInvalid(Suite& s) {
  const Bytes base = BaseFile();
  const Archive ba = Must(ParseArchive(ByteSpan(base)), "base");
  const uint64_t hoff = ba.preamble.header_offset;
  auto model = [&] { return FromFile(base); };

  // ---- Preamble.
  s.Add(Invalid("invalid-empty-file", "core", "P2", ErrorCode::kTruncated,
                "A 0-byte file (the magic check of P1 passes vacuously on 0 bytes).", {}));
  s.Add(Invalid("invalid-truncated-inside-magic", "core", "P2", ErrorCode::kTruncated,
                "The first 5 bytes of a valid file: they agree with the magic, but the file is "
                "shorter than the 64-byte preamble.",
                Bytes(base.begin(), base.begin() + 5)));
  s.Add(Invalid("invalid-truncated-preamble", "core", "P2", ErrorCode::kTruncated,
                "The first 40 bytes of a valid file.", Bytes(base.begin(), base.begin() + 40)));
  {
    Bytes f = base;
    f[3] = 'Q';
    s.Add(Invalid("invalid-bad-magic", "core", "P1", ErrorCode::kBadMagic,
                  "Magic byte 3 is 'Q' instead of 'Z': not a CKZ file.", f));
    const Ckpt c = BaseCkpt();
    s.Add(Invalid("invalid-safetensors-not-ckz", "core", "P1", ErrorCode::kBadMagic,
                  "A safetensors file (the checkpoint of the base case) given as a CKZ file.",
                  BuildSources(c).outputs.begin()->second));
  }
  {
    Bytes f = base;
    f.erase(f.begin() + 4);  // CR LF -> LF
    s.Add(Invalid("invalid-text-mode-crlf", "core", "P1", ErrorCode::kTextModeCorruption,
                  "CR LF in the magic turned into LF, as a text-mode transfer does (the file is one "
                  "byte shorter): bytes 1..3 are still 'CKZ'.",
                  f));
    Bytes g;
    for (uint8_t b : base) {
      if (b == '\n') g.push_back('\r');
      g.push_back(b);
    }
    s.Add(Invalid("invalid-text-mode-lf-to-crlf", "core", "P1", ErrorCode::kTextModeCorruption,
                  "Every LF of a valid file turned into CR LF, as a Unix-to-DOS text transfer does.", g));
    Bytes h = base;
    h[0] &= 0x7F;
    s.Add(Invalid("invalid-text-mode-7bit", "core", "P1", ErrorCode::kTextModeCorruption,
                  "The high bit of magic byte 0 cleared, as a 7-bit channel does.", h));
  }
  {
    Model m = model();
    m.major = 1;
    s.Add(Invalid("invalid-unsupported-version", "core", "P3", ErrorCode::kUnsupportedVersion,
                  "Major version 1 (checksums correct): a 0.x reader must refuse it.", Assemble(m)));
  }
  {
    Bytes f = base;
    f[preamble_offset::kReserved1 + 3] ^= 0x40;
    s.Add(Invalid("invalid-preamble-checksum", "core", "P4", ErrorCode::kPreambleChecksum,
                  "One bit of the reserved1 field changed without updating preamble_crc32c: "
                  "reserved bytes are covered by the checksum.", f));
  }
  {
    Model m = model();
    m.required = uint64_t{1} << 61;  // far above the bits a version assigns
    s.Add(Invalid("invalid-unknown-required-feature", "core", "P5",
                  ErrorCode::kUnknownRequiredFeature,
                  "Required feature bit 61, which no version defines, is set.", Assemble(m),
                  {"feature-bits:required"}));
  }
  {
    Bytes f = base;
    StoreLE64(f.data() + preamble_offset::kHeaderLength, (uint64_t{1} << 26) + 1);
    testing::FixPreambleCrc(f);
    s.Add(Invalid("invalid-header-too-large", "core", "P6", ErrorCode::kHeaderTooLarge,
                  "header_length is 2^26 + 1 (also past the end of the file: P6 is checked before P7).", f));
  }
  {
    Bytes f = base;
    StoreLE64(f.data() + preamble_offset::kHeaderOffset, Align64(f.size()) + 64);
    testing::FixPreambleCrc(f);
    s.Add(Invalid("invalid-header-out-of-bounds", "core", "P7", ErrorCode::kHeaderOutOfBounds,
                  "header_offset points past the end of the file.", f));
    Bytes t(base.begin(), base.end() - 10);
    s.Add(Invalid("invalid-truncated-header", "core", "P7", ErrorCode::kHeaderOutOfBounds,
                  "The last 10 bytes of a valid file are missing: the header range ends past the end "
                  "of the file.", t));
    Bytes z = base;
    StoreLE64(z.data() + preamble_offset::kHeaderOffset, 0);
    testing::FixPreambleCrc(z);
    s.Add(Invalid("invalid-header-overlaps-preamble", "core", "P7", ErrorCode::kHeaderOutOfBounds,
                  "header_offset is 0 (a multiple of 64, but inside the preamble).", z));
  }
  {
    Model m = model();
    m.header_gap = 8;
    s.Add(Invalid("invalid-header-misaligned", "core", "P8", ErrorCode::kMisaligned,
                  "The header starts 8 bytes after a 64-byte boundary (its checksum is correct).",
                  Assemble(m)));
  }
  // ---- Header.
  {
    Bytes f = base;
    f[hoff + HeaderLength(f) - 6] ^= 0x01;
    s.Add(Invalid("invalid-header-checksum", "core", "H1", ErrorCode::kHeaderChecksum,
                  "One bit of the header changed without updating header_crc32c.", f));
  }
  {
    Bytes f = base;
    f[hoff + 7] = 'X';
    testing::FixHeaderCrc(f);
    s.Add(Invalid("invalid-header-identifier", "core", "H2", ErrorCode::kHeaderMalformed,
                  "The FlatBuffers file identifier is 'CKZX' instead of 'CKZH' (checksums correct).", f));
    Bytes g = base;
    StoreLE32(g.data() + hoff, 0x7FFFFFF0);
    testing::FixHeaderCrc(g);
    s.Add(Invalid("invalid-header-not-flatbuffer", "core", "H3", ErrorCode::kHeaderMalformed,
                  "The header's root offset points far outside the buffer: FlatBuffers verification "
                  "fails (checksums correct).", g));
    // A 4-byte header at the end of the payload.
    Bytes h(base.begin(), base.begin() + long(hoff));
    const uint8_t four[4] = {4, 0, 0, 0};
    h.insert(h.end(), four, four + 4);
    StoreLE64(h.data() + preamble_offset::kHeaderLength, 4);
    testing::FixHeaderCrc(h);
    s.Add(Invalid("invalid-header-shorter-than-8", "core", "H2", ErrorCode::kHeaderMalformed,
                  "header_length is 4: too short to hold a root offset and the identifier.", h));
  }
  {
    Model m = model();
    m.tweaks.content_id_bytes = 31;
    s.Add(Invalid("invalid-content-id-length", "core", "H4", ErrorCode::kFieldOutOfRange,
                  "Header.content_id has 31 bytes instead of 32.", Assemble(m)));
  }
  {
    Model m = model();
    m.h.writer = "ckz \xff\xfe";
    s.Add(Invalid("invalid-writer-not-utf8", "core", "H7", ErrorCode::kBadName,
                  "Header.writer is not valid UTF-8.", Assemble(m)));
  }
  // ---- Tensors.
  struct NameCase {
    const char* name;
    std::string value;
    const char* what;
  };
  const NameCase names[] = {
      {"invalid-tensor-name-overlong-utf8", std::string("b\xc0\x80", 3),
       "a tensor name with an overlong UTF-8 encoding of NUL (C0 80)"},
      {"invalid-tensor-name-surrogate", std::string("b\xed\xa0\x80", 4),
       "a tensor name with a UTF-16 surrogate encoded in UTF-8 (ED A0 80)"},
      {"invalid-tensor-name-above-u10ffff", std::string("b\xf4\x90\x80\x80", 5),
       "a tensor name with a code point above U+10FFFF (F4 90 80 80)"},
      {"invalid-tensor-name-empty", std::string(), "an empty tensor name"},
      {"invalid-tensor-name-nul", std::string("b\0c", 3), "a tensor name containing a NUL byte"},
      {"invalid-tensor-name-4097-bytes", std::string(4097, 'n'), "a tensor name of 4097 bytes"},
  };
  for (const NameCase& n : names) {
    Model m = model();
    m.h.tensors[1].name = n.value;
    s.Add(Invalid(n.name, "core", "T1", ErrorCode::kBadName, std::string("Rule N1: ") + n.what + ".",
                  Assemble(m)));
  }
  {
    Model m = model();
    m.h.tensors[1].dtype = static_cast<DType>(0);
    s.Add(Invalid("invalid-dtype-zero", "core", "T2", ErrorCode::kFieldOutOfRange,
                  "Tensor 'b' has dtype 0 (Invalid).", Assemble(m)));
    Model n = model();
    n.h.tensors[1].dtype = static_cast<DType>(11);
    s.Add(Invalid("invalid-dtype-unknown", "core", "T2", ErrorCode::kFieldOutOfRange,
                  "Tensor 'b' has dtype 11, not defined in 0.3.", Assemble(n)));
  }
  {
    Model m = model();
    m.h.tensors[1].shape = std::vector<uint64_t>(33, 1);
    m.h.tensors[1].shape[0] = 4;
    s.Add(Invalid("invalid-shape-33-dims", "core", "T3", ErrorCode::kShapeOverflow,
                  "Tensor 'b' has 33 dimensions [4, 1, 1, ...] (byte length unchanged).", Assemble(m)));
    Model n = model();
    n.h.tensors[0].shape = {uint64_t{1} << 31, uint64_t{1} << 31};
    s.Add(Invalid("invalid-shape-overflow", "core", "T3", ErrorCode::kShapeOverflow,
                  "Tensor 'a' (F32) has shape [2^31, 2^31]: 2^62 elements of 4 bytes overflow 64 bits.",
                  Assemble(n)));
    Model o = model();
    o.h.tensors[1].dtype = DType::kU8;
    o.h.tensors[1].shape = {uint64_t{1} << 63};
    s.Add(Invalid("invalid-shape-2-pow-63-bytes", "core", "T3", ErrorCode::kShapeOverflow,
                  "Tensor 'b' is U8 of shape [2^63]: the byte length must be below 2^63.", Assemble(o)));
  }
  {
    Model m = model();
    m.h.tensors[1].role = static_cast<Role>(4);
    s.Add(Invalid("invalid-role-out-of-range", "core", "T5", ErrorCode::kFieldOutOfRange,
                  "Tensor 'b' has role 4, not defined in 0.3.", Assemble(m)));
  }
  // T8, per chunk.
  {
    Model m = model();
    m.tweaks.chunk_reserved[{0, 1}] = 1;
    s.Add(Invalid("invalid-chunk-reserved-nonzero", "core", "T8", ErrorCode::kNonzeroPadding,
                  "Chunk 1 of tensor 'a' has reserved = 1.", Assemble(m)));
  }
  {
    Model m = model();
    m.edit = [](Archive& h) { h.tensors[0].chunks[2].raw_length = 0; };
    s.Add(Invalid("invalid-chunk-raw-length-zero", "core", "T8", ErrorCode::kChunkLayout,
                  "Chunk 2 of tensor 'a' has raw_length 0.", Assemble(m)));
    Model n = model();
    n.edit = [](Archive& h) {
      h.tensors[0].chunks[0].raw_length = 62;
      h.tensors[0].chunks[1].raw_length = 66;
    };
    s.Add(Invalid("invalid-chunk-partial-element", "core", "T8", ErrorCode::kChunkLayout,
                  "Tensor 'a' (F32) has chunks of 62 and 66 bytes: they sum right but split elements.",
                  Assemble(n)));
    Model o = model();
    o.edit = [](Archive& h) { h.tensors[0].chunks[1].stored_length = 0; };
    s.Add(Invalid("invalid-chunk-stored-length-zero", "core", "T8", ErrorCode::kChunkLayout,
                  "Chunk 1 of tensor 'a' has stored_length 0.", Assemble(o)));
    Model p = model();
    p.edit = [](Archive& h) { h.tensors[0].chunks[2].raw_length = 64; };
    s.Add(Invalid("invalid-chunk-past-tensor-end", "core", "T8", ErrorCode::kChunkLayout,
                  "The last chunk of tensor 'a' (160 bytes) claims 64 bytes at raw offset 128.",
                  Assemble(p)));
  }
  {
    // One U8 chunk of 2^26 + 1 bytes (zstd of zeros: a few KB).
    Ckpt c = Single({MakeT("big", DType::kU8, {(uint64_t{1} << 26) + 1}, 0)});
    std::fill(c.tensors[0].bytes.begin(), c.tensors[0].bytes.end(), 0);
    Ckpt small = Single({MakeT("big", DType::kU8, {64}, 0)});
    Model m = FromFile(Encode(small, Opt(StreamCodec::kZstd, false, 64)).bytes);
    m.h.tensors[0].shape = c.tensors[0].shape;
    m.h.files = BuildSources(c).infos;
    m.h.tensors[0].chunks[0].raw_length = c.tensors[0].bytes.size();
    m.h.tensors[0].chunks[0].crc32c = Crc32c(c.tensors[0].bytes.data(), c.tensors[0].bytes.size());
    m.stored[0][0] = MakeChunk({{StreamCodec::kZstd, Zstd(c.tensors[0].bytes, false, true)}});
    s.Add(Invalid("invalid-chunk-raw-length-too-large", "core", "T8", ErrorCode::kChunkLayout,
                  "A U8 tensor of 2^26 + 1 bytes in one chunk: raw_length is at most 2^26 (the "
                  "zstd stream would decode correctly to 64 MiB of zeros).", Assemble(m)));
  }
  {
    Model m = model();
    m.gap_before[{0, 1}] = 8;
    s.Add(Invalid("invalid-chunk-misaligned", "core", "T8", ErrorCode::kMisaligned,
                  "Chunk 1 of tensor 'a' starts 8 bytes after a 64-byte boundary.", Assemble(m)));
    Model n = model();
    n.edit = [](Archive& h) { h.tensors[1].chunks[0].offset = h.tensors[1].chunks[0].offset + 4096; };
    s.Add(Invalid("invalid-chunk-out-of-file", "core", "T8", ErrorCode::kRangeOutOfFile,
                  "The chunk of tensor 'b' starts past the end of the file.", Assemble(n)));
    Model o = model();
    o.edit = [](Archive& h) { h.tensors[1].chunks[0].stored_length = ~uint64_t{0} - 63; };
    s.Add(Invalid("invalid-chunk-length-overflow", "core", "T8", ErrorCode::kRangeOutOfFile,
                  "The chunk of tensor 'b' has stored_length 2^64 - 64: offset + stored_length "
                  "overflows 64 bits (a reader must check without overflowing).", Assemble(o)));
  }
  {
    Model m = model();
    m.h.tensors[0].chunks.pop_back();
    m.stored[0].pop_back();
    s.Add(Invalid("invalid-chunks-do-not-cover", "core", "T9", ErrorCode::kChunkLayout,
                  "Tensor 'a' (160 bytes) has only its first two chunks (128 bytes); the file has no "
                  "other fault.", Assemble(m)));
  }
  {
    Model m = model();
    m.h.tensors[1].name = "a";
    s.Add(Invalid("invalid-duplicate-tensor-name", "core", "T10", ErrorCode::kDuplicateName,
                  "Two tensors named 'a'.", Assemble(m)));
  }
  // ---- Owners.
  {
    Ckpt c = Single({MakeT("w", DType::kF32, {4}, 1301, Role::kWeight),
                     MakeT("w.exp_avg", DType::kF32, {4}, 1302, Role::kMoment1, 0),
                     MakeT("x", DType::kF32, {2}, 1303, Role::kWeight)});
    const Bytes f = Encode(c, Opt(StreamCodec::kStored, false)).bytes;
    struct OwnerCase {
      const char* name;
      std::function<void(Archive&)> change;
      const char* what;
    };
    const OwnerCase cases[] = {
        {"invalid-owner-not-a-weight", [](Archive& h) { h.tensors[0].role = Role::kOther; },
         "'w.exp_avg' (Moment1) is owned by 'w', whose role is Other"},
        {"invalid-owner-shape-differs", [](Archive& h) { h.tensors[1].owner = 2; },
         "'w.exp_avg' (shape [4]) is owned by 'x' (shape [2])"},
        {"invalid-owner-out-of-range", [](Archive& h) { h.tensors[1].owner = 3; },
         "'w.exp_avg' names owner 3 in a file of 3 tensors"},
        {"invalid-owner-self", [](Archive& h) { h.tensors[1].owner = 1; },
         "'w.exp_avg' names itself as its owner"},
        {"invalid-owner-on-a-weight", [](Archive& h) { h.tensors[2].owner = 0; },
         "the Weight 'x' has an owner: only Moment1 and Moment2 may"},
    };
    for (const OwnerCase& oc : cases) {
      Model m = FromFile(f);
      oc.change(m.h);
      s.Add(Invalid(oc.name, "core", "O1", ErrorCode::kBadOwner, std::string("Rule O1: ") + oc.what + ".",
                    Assemble(m)));
    }
  }
  // ---- Source files.
  {
    const char* bad_paths[][2] = {{"../model.safetensors", "a path with a '..' component"},
                                  {"/model.safetensors", "an absolute path"},
                                  {"dir\\model.safetensors", "a path with a backslash"},
                                  {"c:model.safetensors", "a path with a colon"},
                                  {"dir//model.safetensors", "a path with an empty component"},
                                  {"./model.safetensors", "a path with a '.' component"}};
    const char* path_cases[] = {"invalid-source-path-dotdot", "invalid-source-path-absolute",
                           "invalid-source-path-backslash", "invalid-source-path-colon",
                           "invalid-source-path-empty-component", "invalid-source-path-dot"};
    for (size_t i = 0; i < 6; ++i) {
      Model m = model();
      m.h.files[0].path = bad_paths[i][0];
      s.Add(Invalid(path_cases[i], "core", "F1", ErrorCode::kBadName,
                    std::string("Rule N2: the source file's path '") + bad_paths[i][0] + "' is " +
                        bad_paths[i][1] + ".",
                    Assemble(m)));
    }
  }
  {
    Model m = model();
    m.h.files[0].format = static_cast<SourceFormat>(kMaxSourceFormat + 1);
    s.Add(Invalid("invalid-source-format", "core", "F2", ErrorCode::kFieldOutOfRange,
                  "The source file has a format value no version defines (0..2 are).",
                  Assemble(m)));
    Model n = model();
    n.h.files[0].format = SourceFormat::kRaw;
    s.Add(Invalid("invalid-raw-file-lists-tensors", "core", "F3", ErrorCode::kFieldOutOfRange,
                  "A Raw source file lists tensors.", Assemble(n)));
    Model o = model();
    o.h.files[0].tensors.push_back(2);
    s.Add(Invalid("invalid-source-tensor-index", "core", "F4", ErrorCode::kFieldOutOfRange,
                  "The source file lists tensor index 2 in a file of 2 tensors.", Assemble(o)));
    Model p = model();
    p.h.files[0].tensors = {0, 1, 0};
    s.Add(Invalid("invalid-source-tensor-twice", "core", "F4", ErrorCode::kFieldOutOfRange,
                  "The source file lists tensor 0 twice.", Assemble(p)));
    Model q = model();
    q.h.files[0].tensors = {0};
    SourceFileInfo second = q.h.files[0];
    second.tensors = {1};
    second.prolog = {};
    q.h.files.push_back(second);
    s.Add(Invalid("invalid-duplicate-source-path", "core", "F7", ErrorCode::kDuplicateName,
                  "Two source files with the same path.", Assemble(q)));
    Model r = model();
    r.h.files[0].tensors = {0};
    s.Add(Invalid("invalid-tensor-in-no-file", "core", "F8", ErrorCode::kFieldOutOfRange,
                  "Tensor 'b' belongs to no source file, while there are source files.", Assemble(r)));
    Model t = model();
    SourceFileInfo other = t.h.files[0];
    other.path = "second.safetensors";
    other.tensors = {0};
    t.h.files.push_back(other);
    s.Add(Invalid("invalid-tensor-in-two-files", "core", "F4", ErrorCode::kFieldOutOfRange,
                  "Tensor 'a' is listed by two source files.", Assemble(t)));
    // Splits and CRC-32 patches (0.2), on a file with prolog "PROLOG--" and tensors a, b.
    auto pieces = [&](std::vector<uint64_t> splits, std::vector<Crc32Patch> patches) {
      Model m = model();
      m.h.files[0].format = SourceFormat::kTorchZip;
      m.h.files[0].prolog = Str("PROLOG--");
      m.h.files[0].splits = std::move(splits);
      m.h.files[0].crc32_patches = std::move(patches);
      return m;
    };
    s.Add(Invalid("invalid-splits-count", "core", "F5", ErrorCode::kFieldOutOfRange,
                  "Three splits for a file of two tensors.", Assemble(pieces({0, 2, 4}, {}))));
    s.Add(Invalid("invalid-splits-decreasing", "core", "F5", ErrorCode::kFieldOutOfRange,
                  "Splits 4 then 2: a tensor would go before the one listed ahead of it.",
                  Assemble(pieces({4, 2}, {}))));
    s.Add(Invalid("invalid-splits-past-prolog", "core", "F5", ErrorCode::kFieldOutOfRange,
                  "A split of 9 in an 8-byte prolog.", Assemble(pieces({2, 9}, {}))));
    s.Add(Invalid("invalid-crc32-patch-past-prolog", "core", "F6", ErrorCode::kFieldOutOfRange,
                  "A CRC-32 patch at prolog offset 6: its 4 bytes run past the 8-byte prolog.",
                  Assemble(pieces({0, 4}, {{6, 0}}))));
    s.Add(Invalid("invalid-crc32-patches-overlap", "core", "F6", ErrorCode::kFieldOutOfRange,
                  "CRC-32 patches at prolog offsets 0 and 2 overlap.",
                  Assemble(pieces({8, 8}, {{0, 0}, {2, 1}}))));
    s.Add(Invalid("invalid-crc32-patch-tensor", "core", "F6", ErrorCode::kFieldOutOfRange,
                  "A CRC-32 patch names the file's tensor 2; it has tensors 0 and 1.",
                  Assemble(pieces({8, 8}, {{0, 2}}))));
    // Rule H3's alignment of 8-byte elements (section 4.1), which FlatBuffers 2.0.8's verifier
    // does not check: found by fuzz_container (fuzz/README.md, crash-misaligned-*).
    auto misaligned = [&](Model m, VectorField field, size_t index) {
      m.tweaks.misaligned = MisalignedVector{field, index};
      return Assemble(m);
    };
    const std::string moved =
        " vector is moved to the end of the header with its length prefix at a multiple of 8 "
        "from the buffer's start, so its elements start 4 bytes off their 8-byte alignment; "
        "FlatBuffers 2.0's own verifier accepts that, rule H3 (section 4.1) does not.";
    s.Add(Invalid("invalid-misaligned-shape-vector", "core", "H3", ErrorCode::kHeaderMalformed,
                  "tensors[0].shape (u64 elements):" + moved,
                  misaligned(model(), VectorField::kShape, 0)));
    s.Add(Invalid("invalid-misaligned-chunks-vector", "core", "H3", ErrorCode::kHeaderMalformed,
                  "tensors[0].chunks (32-byte structs aligned to 8):" + moved,
                  misaligned(model(), VectorField::kChunks, 0)));
    s.Add(Invalid("invalid-misaligned-splits-vector", "core", "H3", ErrorCode::kHeaderMalformed,
                  "files[0].splits (u64 elements) of a TorchZip file with prolog \"PROLOG--\" "
                  "and splits 2, 4:" + moved,
                  misaligned(pieces({2, 4}, {{4, 1}}), VectorField::kSplits, 0)));
    s.Add(Invalid("invalid-misaligned-crc32-patches-vector", "core", "H3",
                  ErrorCode::kHeaderMalformed,
                  "files[0].crc32_patches (16-byte structs aligned to 8) of the same file, one "
                  "patch at prolog offset 4 for tensor 1:" + moved,
                  misaligned(pieces({2, 4}, {{4, 1}}), VectorField::kCrc32Patches, 0)));
    Check(ParseArchive(ByteSpan(Assemble(pieces({2, 4}, {{4, 1}})))).ok(),
          "misaligned vectors: the file before the move must be valid");
  }
  // ---- Metadata.
  {
    auto with_meta = [&](std::vector<MetaEntry> meta) {
      Model m = model();
      m.h.metadata = std::move(meta);
      return m;
    };
    Model a = with_meta({{"ok", int64_t{1}}, {"", int64_t{2}}});
    s.Add(Invalid("invalid-metadata-key-empty", "core", "M1", ErrorCode::kBadName,
                  "A metadata entry with an empty key (rule N1).", Assemble(a)));
    Model b = with_meta({{"ok", int64_t{1}}, {"bad", int64_t{2}}});
    b.tweaks.meta_type[1] = 0;
    s.Add(Invalid("invalid-metadata-type-none", "core", "M2", ErrorCode::kFieldOutOfRange,
                  "A metadata value of union type 0 (NONE) with a value table present.", Assemble(b)));
    Model c = with_meta({{"ok", int64_t{1}}, {"future", int64_t{2}}});
    c.tweaks.meta_type[1] = 6;
    s.Add(Invalid("invalid-metadata-type-unknown", "core", "M2", ErrorCode::kFieldOutOfRange,
                  "A metadata value of union type 6, not defined in 0.3.", Assemble(c)));
    Model d = with_meta({{"text", std::string("caf\xe9")}});
    s.Add(Invalid("invalid-metadata-string-not-utf8", "core", "M3", ErrorCode::kBadName,
                  "A StringValue that is not UTF-8 (Latin-1 'caf\\xe9').", Assemble(d)));
    Model e = with_meta({{"k", int64_t{1}}, {"k", std::string("again")}});
    s.Add(Invalid("invalid-duplicate-metadata-key", "core", "M4", ErrorCode::kDuplicateName,
                  "Two metadata entries with the key 'k'.", Assemble(e)));
  }
  // ---- Layout (section 5).
  {
    // "b2" is a copy of "a": a writer that deduplicates identical chunks by pointing both at the
    // same bytes makes an invalid file (regions must not overlap).
    Ckpt c = BaseCkpt();
    T copy = c.tensors[0];
    copy.name = "a2";
    copy.role = Role::kOther;
    c.tensors.push_back(copy);
    c.files[0].tensors.push_back("a2");
    Model m = FromFile(Encode(c, Opt(StreamCodec::kStored, false, 64)).bytes);
    m.share_chunks[2] = 0;
    s.Add(Invalid("invalid-overlapping-chunks", "core", "L1", ErrorCode::kRangeOverlap,
                  "Tensor 'a2' is a copy of 'a', and its chunks point at the same bytes as those of "
                  "'a' (deduplicated): regions must not overlap. Everything else is valid.",
                  Assemble(m)));
    Model n = model();
    n.edit = [](Archive& h) { h.tensors[1].chunks[0].offset = 0; };
    s.Add(Invalid("invalid-chunk-overlaps-preamble", "core", "L1", ErrorCode::kRangeOverlap,
                  "The chunk of tensor 'b' claims offset 0, inside the preamble.", Assemble(n)));
  }
  {
    Model m = model();
    m.gap_before[{0, 2}] = 64;
    s.Add(Invalid("invalid-gap-between-chunks", "core", "L2", ErrorCode::kUnexplainedBytes,
                  "64 zero bytes more than alignment needs before chunk 2 of tensor 'a'.", Assemble(m)));
    Bytes t = base;
    t.push_back(0);
    s.Add(Invalid("invalid-trailing-bytes", "core", "L4", ErrorCode::kUnexplainedBytes,
                  "One zero byte after the header, at the end of the file.", t));
  }
  {
    Bytes f = base;
    const ChunkInfo& c = ba.tensors[0].chunks[0];
    f[c.offset + c.stored_length + 3] = 0x01;
    s.Add(Invalid("invalid-nonzero-padding", "core", "L3", ErrorCode::kNonzeroPadding,
                  "A padding byte between two chunks is 0x01 (padding is not covered by any checksum).",
                  f));
  }
  // ---- Chunk decoding (section 7).
  {
    Bytes f = base;
    const ChunkInfo& c = ba.tensors[0].chunks[2];
    f[c.offset + 5 + 9] ^= 0x04;
    s.Add(Invalid("invalid-chunk-checksum", "core", "C5", ErrorCode::kChunkChecksum,
                  "A bit of the last chunk of tensor 'a' flipped in its stored stream: the chunk "
                  "decodes, but not to its CRC-32C. The first chunks are intact: a decoder must not "
                  "leave a partial output file.", f));
    Model m = model();
    m.edit = [](Archive& h) { h.tensors[1].chunks[0].crc32c ^= 0x80000000u; };
    s.Add(Invalid("invalid-chunk-crc-field", "core", "C5", ErrorCode::kChunkChecksum,
                  "The header's crc32c of the chunk of tensor 'b' is wrong; the stored bytes are intact.",
                  Assemble(m)));
  }
  {
    Bytes f = base;
    const ChunkInfo& c = ba.tensors[0].chunks[1];
    f[c.offset] = 2;
    s.Add(Invalid("invalid-stream-directory", "core", "C1", ErrorCode::kChunkMalformed,
                  "Chunk 1 of tensor 'a' names stream codec 2, not defined in 0.3.", f));
    Bytes g = base;
    StoreLE32(g.data() + c.offset + 1, 65);
    s.Add(Invalid("invalid-stream-directory-lengths", "core", "C1", ErrorCode::kChunkMalformed,
                  "The stream directory of chunk 1 of tensor 'a' declares 65 stored bytes; the chunk "
                  "holds 5 + 64.", g));
  }
  {
    // A byte-plane chunk of an I64 tensor (8 streams: a 40-byte directory) of 12 stored bytes.
    Model m = FromFile(BaseFile(StreamCodec::kStored, true));
    m.stored[1][0] = Bytes(12, 0);
    s.Add(Invalid("invalid-stream-directory-truncated", "core", "C1", ErrorCode::kChunkMalformed,
                  "Tensor 'b' (I64, byte planes: 8 streams, a 40-byte directory) has a chunk of 12 "
                  "stored bytes.", Assemble(m)));
  }
  {
    Model m = model();
    Bytes data = Bytes(m.stored[1][0].begin() + 5, m.stored[1][0].end());
    data.push_back(0);
    m.stored[1][0] = MakeChunk({{StreamCodec::kStored, data}});
    s.Add(Invalid("invalid-stored-stream-wrong-length", "core", "C2", ErrorCode::kChunkDecodeFailed,
                  "A stored stream of 33 bytes in a chunk of raw_length 32 (directory and "
                  "stored_length agree with it).", Assemble(m)));
  }
  {
    // zstd streams that break section 7.2, each in the chunk of tensor 'b' (raw 32 bytes).
    const Ckpt c = BaseCkpt();
    const Bytes raw = c.tensors[1].bytes;
    auto zcase = [&](const std::string& name, const Bytes& stream, const std::string& what,
                     std::vector<std::string> features = {}) {
      Model m = FromFile(BaseFile(StreamCodec::kZstd));
      m.stored[1][0] = MakeChunk({{StreamCodec::kZstd, stream}});
      s.Add(Invalid(name, "core", "C2", ErrorCode::kChunkDecodeFailed, what, Assemble(m),
                    std::move(features)));
    };
    Bytes trailing = Zstd(raw);
    trailing.insert(trailing.end(), {0, 0, 0});
    zcase("invalid-zstd-trailing-bytes", trailing,
          "A zstd stream followed by 3 zero bytes: a stream is exactly one frame and nothing else.");
    Bytes two = Zstd(raw.data(), 16);
    const Bytes second = Zstd(raw.data() + 16, 16);
    two.insert(two.end(), second.begin(), second.end());
    zcase("invalid-zstd-two-frames", two,
          "Two zstd frames of 16 bytes each: together they decode to the right 32 bytes, but a "
          "stream is exactly one frame.");
    Bytes skip = {0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 'C', 'K', 'Z', '!'};
    const Bytes frame = Zstd(raw);
    skip.insert(skip.end(), frame.begin(), frame.end());
    zcase("invalid-zstd-skippable-frame", skip,
          "A skippable frame (4 bytes of user data) before the zstd frame: not allowed.");
    Bytes fcs = Zstd(raw);
    Check(fcs[4] == 0x20, "expected a single-segment frame with a 1-byte content size");
    fcs[5] = uint8_t(raw.size() + 1);
    zcase("invalid-zstd-content-size-mismatch", fcs,
          "The zstd frame header declares 33 bytes of content; the chunk's stream is 32 bytes "
          "(and the frame's blocks do decode to 32).");
    zcase("invalid-zstd-short-output", Zstd(raw.data(), 28, false, false),
          "A zstd frame without a content size that decodes to 28 bytes; the stream must be 32.");
    Bytes sum = Zstd(raw, true, true);
    sum.back() ^= 0x01;
    zcase("invalid-zstd-bad-checksum", sum,
          "A zstd frame with a frame checksum that does not match (the decoded bytes themselves "
          "are right, so the chunk CRC would pass): the frame checksum MUST be checked.");
    Bytes window = Zstd(raw, false, false);
    Check((window[4] & 0x20) == 0, "expected a frame with a window descriptor");
    window[5] = 18 << 3;  // Window_Log = 10 + 18 = 28
    zcase("invalid-zstd-window-too-large", window,
          "A zstd frame whose window descriptor asks for a 2^28-byte window (more than 2^27); "
          "its blocks decode correctly to the 32 bytes.");
    zcase("invalid-zstd-garbage", raw,
          "A stream marked zstd whose bytes are the raw tensor bytes: not a zstd frame.");
  }
  {
    // Spec 7.2: Window_Size >= the stream's decoded length. A 4 KiB tensor in one chunk, its
    // zstd frame without a content size and with a 1 KiB window (libzstd decodes it anyway).
    const Ckpt c = Single({MakeT("big", DType::kF32, {32, 32}, 41)});
    Model m = FromFile(Encode(c, Opt(StreamCodec::kZstd, false, 4096)).bytes);
    const Bytes& raw = c.tensors[0].bytes;
    ZSTD_CCtx* z = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, 0);
    ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, 10);
    Bytes frame(ZSTD_compressBound(raw.size()));
    const size_t n = ZSTD_compress2(z, frame.data(), frame.size(), raw.data(), raw.size());
    ZSTD_freeCCtx(z);
    Check(!ZSTD_isError(n), "zstd-window-smaller-than-output: zstd failed");
    frame.resize(n);
    Check((frame[4] & 0x20) == 0 && frame[5] == 0, "expected a 1 KiB window descriptor");
    m.stored[0][0] = MakeChunk({{StreamCodec::kZstd, frame}});
    s.Add(Invalid("invalid-zstd-window-smaller-than-output", "core", "C2",
                  ErrorCode::kChunkDecodeFailed,
                  "Tensor 'big' (4096 bytes, one chunk) is one zstd frame without a content size "
                  "whose window descriptor gives Window_Size 1024: spec 7.2 requires a window at "
                  "least as large as the stream's 4096 decoded bytes (libzstd's one-shot decoder "
                  "would accept it).",
                  Assemble(m)));
  }
}

// ------------------------------------------------------------------------------------------
// Full profile: chains and predictors.

Ckpt ChainBase(uint64_t seed) {
  Ckpt c = Single({MakeT("w", DType::kF32, {16, 16}, seed + 1, Role::kWeight),
                   MakeT("b", DType::kF32, {16}, seed + 2, Role::kWeight),
                   MakeT("h", DType::kF16, {8, 8}, seed + 3, Role::kWeight),
                   MakeT("n", DType::kI64, {}, seed + 4)});
  c.step = 1000;
  return c;
}

// Bit patterns at the edges of the wrapping arithmetic of SubRef: (child, parent) pairs.
std::pair<T, T> WrapPair(const std::string& name, DType dtype, uint64_t seed) {
  const size_t w = DTypeSize(dtype);
  const uint64_t top = Mask(w), half = uint64_t{1} << (8 * w - 1);
  std::vector<std::pair<uint64_t, uint64_t>> pairs = {
      {0, top}, {top, 0}, {half, half - 1}, {half - 1, half}, {0, half}, {half, 0},
      {1, top}, {top, 1}, {5, 5},           {top, top},       {0, 0},    {half, top}};
  if (dtype == DType::kBool) pairs = {{0, 1}, {1, 0}, {1, 1}, {0, 0}};
  Rng r(seed);
  while (pairs.size() < 20) {
    const uint64_t x = dtype == DType::kBool ? r.Next() & 1 : r.Next() & top;
    const uint64_t y = dtype == DType::kBool ? r.Next() & 1 : r.Next() & top;
    pairs.push_back({x, y});
  }
  std::vector<uint64_t> xs, rs;
  for (const auto& [x, y] : pairs) {
    xs.push_back(x);
    rs.push_back(y);
  }
  return {FromElems(name, dtype, {xs.size()}, xs), FromElems(name, dtype, {rs.size()}, rs)};
}

void FullValid(Suite& s) {
  {
    Ckpt p = ChainBase(2000);
    s.Add(ChainCase("full-chain-xor-depth1",
                    "A link of depth 1 (input.ckz) predicted from its keyframe (parent-1.ckz) with "
                    "XorRef; byte planes, zstd streams, 256-byte chunks.",
                    {{p, Opt(StreamCodec::kZstd, true, 256)},
                     {Next(p, 1), Opt(StreamCodec::kZstd, true, 256, Predictor::kXorRef)}}));
    Ckpt q = ChainBase(2100);
    s.Add(ChainCase("full-chain-sub-depth1",
                    "A link of depth 1 predicted with SubRef (zigzag of the wrapping integer "
                    "difference of the bit patterns); stored streams, no byte planes, 256-byte chunks.",
                    {{q, Opt(StreamCodec::kStored, false, 256)},
                     {Next(q, 2), Opt(StreamCodec::kStored, false, 256, Predictor::kSubRef)}}));
  }
  {
    Ckpt p = Single(EveryDtype(2200));
    s.Add(ChainCase("full-chain-xor-every-dtype",
                    "XorRef on every dtype; byte planes, stored streams, 24-byte chunks.",
                    {{p, Opt(StreamCodec::kZstd, false, 24)},
                     {Next(p, 3), Opt(StreamCodec::kStored, true, 24, Predictor::kXorRef)}}));
  }
  {
    Ckpt child, parent;
    const std::pair<const char*, DType> dts[] = {
        {"f64", DType::kF64}, {"f32", DType::kF32}, {"f16", DType::kF16}, {"bf16", DType::kBF16},
        {"i64", DType::kI64}, {"i32", DType::kI32}, {"i16", DType::kI16}, {"i8", DType::kI8},
        {"u8", DType::kU8},   {"bool", DType::kBool}};
    uint64_t seed = 2300;
    for (const auto& [name, dt] : dts) {
      auto [x, r] = WrapPair(name, dt, ++seed);
      child.tensors.push_back(x);
      parent.tensors.push_back(r);
    }
    SrcFile f;
    f.path = "model.safetensors";
    for (const T& t : child.tensors) f.tensors.push_back(t.name);
    child.files = parent.files = {f};
    s.Add(ChainCase("full-chain-sub-wraparound",
                    "SubRef on every dtype with element pairs at the edges of the wrapping "
                    "arithmetic (0 vs all-ones, 2^(8w-1) vs 2^(8w-1)-1, ...): the difference and the "
                    "zigzag are mod 2^(8w). No byte planes, zstd streams, 32-byte chunks.",
                    {{parent, Opt(StreamCodec::kStored, false, 32)},
                     {child, Opt(StreamCodec::kZstd, false, 32, Predictor::kSubRef)}},
                    {"predictor:wraparound"}));
  }
  {
    Ckpt k = ChainBase(2400);
    Ckpt l1 = Next(k, 4), l2 = Next(l1, 5), l3 = Next(l2, 6);
    s.Add(ChainCase("full-chain-sub-depth3",
                    "A chain of depth 3: input.ckz -> parent-1.ckz -> parent-2.ckz -> parent-3.ckz "
                    "(the keyframe), every link SubRef with byte planes and zstd, 256-byte chunks. "
                    "Decoding input.ckz needs the decoded bytes of every level.",
                    {{k, Opt(StreamCodec::kZstd, true, 256)},
                     {l1, Opt(StreamCodec::kZstd, true, 256, Predictor::kSubRef)},
                     {l2, Opt(StreamCodec::kZstd, true, 256, Predictor::kSubRef)},
                     {l3, Opt(StreamCodec::kZstd, true, 256, Predictor::kSubRef)}}));
    Ckpt m = ChainBase(2450);
    Ckpt m1 = Next(m, 7), m2 = Next(m1, 8), m3 = Next(m2, 9);
    s.Add(ChainCase("full-chain-mixed-depth3",
                    "A chain of depth 3 whose levels use different tools and chunk sizes: keyframe "
                    "(planes, zstd, 200-byte chunks), then XorRef (planes, stored, 96), SubRef (no "
                    "planes, zstd, 160), XorRef (planes, zstd, 64). Chunk boundaries of the levels "
                    "do not line up.",
                    {{m, Opt(StreamCodec::kZstd, true, 200)},
                     {m1, Opt(StreamCodec::kStored, true, 96, Predictor::kXorRef)},
                     {m2, Opt(StreamCodec::kZstd, false, 160, Predictor::kSubRef)},
                     {m3, Opt(StreamCodec::kZstd, true, 64, Predictor::kXorRef)}}));
  }
  {
    Ckpt k = Single({MakeT("w", DType::kF32, {600}, 2501, Role::kWeight), MakeT("s", DType::kI16, {333}, 2502)});
    Ckpt l1 = Next(k, 10), l2 = Next(l1, 11);
    s.Add(ChainCase("full-chain-misaligned-chunks",
                    "Parent and child chunk boundaries disagree (section 10.2): keyframe chunks of "
                    "1000 bytes, the depth-1 link 384 bytes, the depth-2 link 572 bytes (572 for F32, "
                    "572 for I16): each child chunk needs reference bytes that span two parent chunks.",
                    {{k, Opt(StreamCodec::kStored, false, 1000)},
                     {l1, Opt(StreamCodec::kStored, false, 384, Predictor::kSubRef)},
                     {l2, Opt(StreamCodec::kZstd, false, 572, Predictor::kXorRef)}}));
  }
  {
    // Partial prediction: predicted, unpredicted, new in the child, gone from the child.
    Ckpt p = Single({MakeT("w", DType::kF32, {32}, 2601, Role::kWeight), MakeT("b", DType::kF32, {8}, 2602),
                     MakeT("gone", DType::kI32, {4}, 2603), MakeT("s", DType::kF32, {}, 2604),
                     MakeT("e", DType::kF32, {0, 4}, 2605)});
    Ckpt c = Next(p, 12);
    c.tensors.erase(c.tensors.begin() + 2);
    c.tensors[1].predict = false;
    c.tensors.push_back(MakeT("new", DType::kF32, {6}, 2606));
    c.files[0].tensors = {"w", "b", "s", "e", "new"};
    s.Add(ChainCase("full-chain-partial-prediction",
                    "A link in which 'w' and the 0-d 's' are predicted (XorRef), 'b' is in the parent "
                    "but not predicted (predictor None), 'new' is not in the parent, 'gone' is only "
                    "in the parent, and the empty 'e' has no chunks. Only predicted tensors need "
                    "the parent's bytes.",
                    {{p, Opt(StreamCodec::kStored, true, 64)},
                     {c, Opt(StreamCodec::kZstd, true, 64, Predictor::kXorRef)}},
                    {"predictor:partial"}));
  }
  {
    // Keyframe K0, links L1 and L2, a new keyframe K3, then the input L4 linked to K3.
    Ckpt k0 = ChainBase(2700);
    Ckpt l1 = Next(k0, 13), l2 = Next(l1, 14), k3 = Next(l2, 15), l4 = Next(k3, 16);
    const EncodeOptions kf = Opt(StreamCodec::kZstd, true, 256);
    const EncodeOptions ln = Opt(StreamCodec::kZstd, true, 256, Predictor::kXorRef);
    const auto old = WriteChain({{k0, kf}, {l1, ln}, {l2, ln}}, {"step-0.ckz", "step-1.ckz", "step-2.ckz"});
    const auto now = WriteChain({{k3, kf}, {l4, ln}}, {"parent-1.ckz", "input.ckz"});
    Case c = Valid("full-chain-after-new-keyframe", "full",
                   "A history folder: step-0.ckz (keyframe), step-1.ckz and step-2.ckz (links), "
                   "parent-1.ckz (a new keyframe, step 3) and input.ckz (step 4, a link of depth 1 "
                   "to parent-1.ckz). Only parent-1.ckz is needed; the others are other checkpoints "
                   "of the same tensors and must not be used.",
                   l4, now[1].bytes, {"chain:keyframe-interval"});
    c.files.push_back({"parent-1.ckz", now[0].bytes});
    c.files.push_back({"step-0.ckz", old[0].bytes});
    c.files.push_back({"step-1.ckz", old[1].bytes});
    c.files.push_back({"step-2.ckz", old[2].bytes});
    s.Add(c);
  }
  {
    Ckpt p = ChainBase(2800);
    Ckpt n = Next(p, 17);
    const Encoded pe = Encode(p, Opt(StreamCodec::kZstd, true, 256));
    const Encoded ce = Encode(n, Opt(StreamCodec::kZstd, true, 256, Predictor::kXorRef),
                              LinkTo(pe, p, "checkpoint-1000.ckz", 1), &p);
    Case c = Valid("full-chain-stale-path-hint", "full",
                   "The link's path_hint names 'checkpoint-1000.ckz', which does not exist: the "
                   "parent is found by its content id as parent-1.ckz.",
                   n, ce.bytes, {"chain:path-hint-stale"});
    c.files.push_back({"parent-1.ckz", pe.bytes});
    s.Add(c);
    // A decoy under the hinted name: same tensor names and shapes, other values.
    Ckpt decoy = ChainBase(2850);
    Case d = Valid("full-chain-decoy-at-path-hint", "full",
                   "The link's path_hint names 'checkpoint-1000.ckz', and a file of that name "
                   "exists, with the same tensor names and shapes but another content id. The real "
                   "parent is parent-1.ckz: parents are found by content id, never by name alone.",
                   n, ce.bytes, {"chain:path-hint-decoy"});
    d.files.push_back({"parent-1.ckz", pe.bytes});
    d.files.push_back({"checkpoint-1000.ckz", Encode(decoy, Opt(StreamCodec::kZstd, true, 256)).bytes});
    s.Add(d);
  }
}

void FullInvalid(Suite& s) {
  const BaseChain bc = MakeBaseChain();
  {
    s.Add(Invalid("invalid-missing-parent", "full", "R1", ErrorCode::kParentNotFound,
                  "A link whose parent is not in the folder (no .ckz file has its content id).",
                  bc.c.bytes));
    const Encoded other = Encode(Next(bc.parent, 40), Opt(StreamCodec::kStored, false, 64));
    s.Add(ChainInvalid("invalid-wrong-parent", "R1", ErrorCode::kParentNotFound,
                       "parent-1.ckz, the file named by the link's path_hint, is a valid keyframe "
                       "of the same tensors but with another content id; no file has the right "
                       "one. (A decoder given that file explicitly as the parent reports "
                       "WrongParent instead.)",
                       bc.c.bytes, other.bytes));
  }
  {
    Ckpt k = BaseCkpt(), l1 = Next(k, 41), l2 = Next(l1, 42);
    const auto files = WriteChain({{k, Opt(StreamCodec::kStored, false, 64)},
                                   {l1, Opt(StreamCodec::kStored, false, 64, Predictor::kXorRef)},
                                   {l2, Opt(StreamCodec::kStored, false, 64, Predictor::kXorRef)}},
                                  ChainNames(3));
    Case c = Invalid("invalid-missing-grandparent", "full", "R1", ErrorCode::kParentNotFound,
                     "A link of depth 2 whose parent (parent-1.ckz, depth 1) is present but whose "
                     "grandparent keyframe is missing.",
                     files[2].bytes);
    c.files.push_back({"parent-1.ckz", files[1].bytes});
    s.Add(c);
  }
  {
    Model m = FromFile(bc.c.bytes);
    m.h.link->depth = 2;
    s.Add(ChainInvalid("invalid-chain-depth-mismatch", "R2", ErrorCode::kBadChain,
                       "The link claims depth 2, but its parent (found by content id) is a keyframe "
                       "(depth 0).", Assemble(m), bc.p.bytes));
    // Two files naming each other as parent, both claiming depth 1.
    Model x = FromFile(bc.c.bytes), y = FromFile(bc.c.bytes);
    x.h.content_id.fill(0xAA);
    y.h.content_id.fill(0xBB);
    x.h.link->parent_content_id = y.h.content_id;
    y.h.link->parent_content_id = x.h.content_id;
    s.Add(ChainInvalid("invalid-chain-cycle", "R2", ErrorCode::kBadChain,
                       "input.ckz (content id AA..AA) names parent-1.ckz (content id BB..BB) as its "
                       "parent and parent-1.ckz names input.ckz; both claim depth 1. Checking the "
                       "parent's depth before following it stops the loop.",
                       Assemble(x), Assemble(y)));
  }
  {
    // Parents lacking the predicted tensor, or having it with another shape or dtype.
    auto mismatch = [&](const std::string& name, const std::string& what,
                        const std::function<void(Ckpt&)> change) {
      Ckpt parent = bc.parent;
      change(parent);
      const Encoded pe = Encode(parent, Opt(StreamCodec::kStored, false, 64));
      const Encoded ce = Encode(bc.child, Opt(StreamCodec::kStored, false, 64, Predictor::kXorRef),
                                LinkTo(pe, parent, "parent-1.ckz", 1), &parent);
      Model m = FromFile(ce.bytes);
      Check(m.h.tensors[0].predictor == Predictor::kXorRef || name == "invalid-reference-missing-tensor",
            name + ": 'a' is predicted");
      if (name == "invalid-reference-missing-tensor") {
        // Written against the intact parent, then pointed at one without 'a'.
        m = FromFile(bc.c.bytes);
        m.h.link->parent_content_id = pe.id;
      }
      s.Add(ChainInvalid(name, "R3", ErrorCode::kReferenceMismatch, what, Assemble(m), pe.bytes));
    };
    mismatch("invalid-reference-missing-tensor",
             "Tensor 'a' is predicted (XorRef), but the parent has no tensor 'a'.", [](Ckpt& p) {
               p.tensors[0].name = "a_renamed";
               p.files[0].tensors[0] = "a_renamed";
             });
    mismatch("invalid-reference-shape-mismatch",
             "Tensor 'a' (F32 [40]) is predicted from the parent's 'a', which is F32 [8, 5]: same "
             "byte length, other shape.",
             [](Ckpt& p) { p.tensors[0].shape = {8, 5}; });
    mismatch("invalid-reference-dtype-mismatch",
             "Tensor 'a' (F32 [40]) is predicted from the parent's 'a', which is I32 [40]: same "
             "byte length, other dtype.",
             [](Ckpt& p) { p.tensors[0].dtype = DType::kI32; });
  }
  {
    // R3 holds for a tensor without elements too (it has no chunk to fetch a reference for).
    Ckpt parent = BaseCkpt(), child;
    parent.tensors.push_back(MakeT("e", DType::kF32, {0, 4}, 0));
    parent.files[0].tensors.push_back("e");
    child = Next(parent, 7);
    child.tensors[2].shape = {0, 3};
    const Encoded pe = Encode(parent, Opt(StreamCodec::kStored, false, 64));
    const Encoded ce = Encode(child, Opt(StreamCodec::kStored, false, 64, Predictor::kXorRef),
                              LinkTo(pe, parent, "parent-1.ckz", 1), &parent);
    Model m = FromFile(ce.bytes);
    m.h.tensors[2].predictor = Predictor::kXorRef;
    s.Add(ChainInvalid("invalid-reference-shape-mismatch-empty", "R3",
                       ErrorCode::kReferenceMismatch,
                       "Tensor 'e' (F32 [0, 3], no elements, no chunks) is predicted (XorRef) from "
                       "the parent's 'e', which is F32 [0, 4]: rule R3 applies to a tensor "
                       "without elements too.",
                       Assemble(m), pe.bytes));
  }
  {
    Model m = FromFile(bc.c.bytes);
    m.h.tensors[0].predictor = static_cast<Predictor>(3);
    s.Add(ChainInvalid("invalid-predictor-out-of-range", "T6", ErrorCode::kFieldOutOfRange,
                       "Tensor 'a' of a link has predictor 3, not defined in 0.3.", Assemble(m), bc.p.bytes));
    Model k = FromFile(BaseFile());
    k.h.tensors[0].predictor = Predictor::kXorRef;
    s.Add(Invalid("invalid-predictor-without-link", "full", "T7", ErrorCode::kBadLink,
                  "A keyframe (no link, feature bit 0 clear) whose tensor 'a' has predictor XorRef.",
                  Assemble(k)));
  }
  {
    Model m = FromFile(bc.c.bytes);
    m.required = 0;
    s.Add(ChainInvalid("invalid-link-without-feature-bit", "H5", ErrorCode::kBadLink,
                       "A link whose required feature bit 0 (reference-chain) is clear.", Assemble(m),
                       bc.p.bytes));
    Model k = FromFile(BaseFile());
    k.required = 1;
    s.Add(Invalid("invalid-feature-bit-without-link", "full", "H5", ErrorCode::kBadLink,
                  "A keyframe (no link) with required feature bit 0 (reference-chain) set.", Assemble(k)));
    Model d = FromFile(bc.c.bytes);
    d.h.link->depth = 0;
    s.Add(ChainInvalid("invalid-link-depth-zero", "H6", ErrorCode::kBadLink,
                       "A link with depth 0 (a link is at least 1 away from its keyframe).",
                       Assemble(d), bc.p.bytes));
    Model p = FromFile(bc.c.bytes);
    p.tweaks.parent_id_bytes = 33;
    s.Add(ChainInvalid("invalid-link-parent-id-length", "H6", ErrorCode::kFieldOutOfRange,
                       "link.parent_content_id has 33 bytes instead of 32.", Assemble(p), bc.p.bytes));
    Model h = FromFile(bc.c.bytes);
    h.h.link->path_hint = "../parent-1.ckz";
    s.Add(ChainInvalid("invalid-link-path-hint-not-relative", "H6", ErrorCode::kBadName,
                       "link.path_hint is '../parent-1.ckz', which breaks rule N2.", Assemble(h),
                       bc.p.bytes));
  }
  {
    // A payload fault found only through the chain: the parent's chunk is damaged.
    Bytes parent = bc.p.bytes;
    const Archive pa = Must(ParseArchive(ByteSpan(parent)), "parent");
    parent[pa.tensors[0].chunks[1].offset + 5 + 17] ^= 0x10;
    s.Add(ChainInvalid("invalid-parent-chunk-checksum", "C5", ErrorCode::kChunkChecksum,
                       "input.ckz is intact, but a stored byte of a chunk of its parent (whose "
                       "tensor 'a' input.ckz predicts from) is damaged: decoding through the chain "
                       "fails the parent chunk's CRC-32C.",
                       bc.c.bytes, parent));
    Bytes child = bc.c.bytes;
    const Archive ca = Must(ParseArchive(ByteSpan(child)), "child");
    child[ca.tensors[0].chunks[0].offset + 5 + 2] ^= 0x01;
    s.Add(ChainInvalid("invalid-predicted-chunk-checksum", "C5", ErrorCode::kChunkChecksum,
                       "A stored byte of a predicted (XorRef) chunk of input.ckz is damaged: after "
                       "the predictor is undone, the chunk fails its CRC-32C.",
                       child, bc.p.bytes));
  }
}

}  // namespace


// ------------------------------------------------------------------------------------------
// Full profile: quantized tensors (spec 7.6).

// A codebook of `n` centres given as exact binary32 bit patterns: sorted, spread over
// +-2^-7..2^-3 (integer arithmetic only, so every machine makes the same one).
std::vector<float> Codebook(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> c;
  while (c.size() < n) {
    const uint32_t sign = uint32_t(r.Next() & 1) << 31;
    const uint32_t exponent = uint32_t(127 - 7 + r.Next() % 5) << 23;
    const float x = F32FromBits(sign | exponent | uint32_t(r.Next() & 0x7FFFFF));
    if (std::find(c.begin(), c.end(), x) == c.end()) c.push_back(x);
  }
  std::sort(c.begin(), c.end());
  return c;
}

// Makes tensor `name` of `c` quantized: `kind`, `bits`, `centres` centres, indices drawn from
// `seed` (about one in `zero_every` pruned; every index value used when the tensor is large
// enough), and its bytes the reconstruction that decoders must produce: the writer's (spec
// 7.6 is checked against independent arithmetic in tests/quantize_test.cc; here the suite's
// decode check makes the reference decoder agree with it).
void QuantizeWith(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits,
                  size_t centres, uint64_t seed, const Ckpt* parent, float scale, Bytes indices);

void Quantize(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits, size_t centres,
              uint64_t seed, const Ckpt* parent, float scale = 1.0f, unsigned zero_every = 4) {
  const uint64_t n = Elements(c.tensors[c.Index(name)].shape);
  Rng r(seed + 7);
  Bytes indices(n);
  for (uint64_t i = 0; i < n; ++i)
    indices[i] = r.Next() % zero_every == 0 ? 0 : uint8_t(1 + (i * 7 + r.Next()) % centres);
  QuantizeWith(c, name, kind, bits, centres, seed, parent, scale, std::move(indices));
}

// The same with the codebook given, in the order given (not necessarily sorted).
void QuantizeCentres(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits,
                     std::vector<float> codebook, const Ckpt* parent, float scale, Bytes indices);

// The same with the indices given (codebook from `seed`).
void QuantizeWith(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits,
                  size_t centres, uint64_t seed, const Ckpt* parent, float scale, Bytes indices) {
  QuantizeCentres(c, name, kind, bits, Codebook(centres, seed), parent, scale,
                  std::move(indices));
}

void QuantizeCentres(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits,
                     std::vector<float> codebook, const Ckpt* parent, float scale, Bytes indices) {
  T& t = c.tensors[c.Index(name)];
  QuantizationInfo q;
  q.kind = kind;
  q.bits = uint8_t(bits);
  q.codebook = std::move(codebook);
  q.reference_scale = scale;
  Check(indices.size() == Elements(t.shape), name + ": one index per element");
  t.indices = std::move(indices);
  ByteSpan ref;
  if (kind == QuantKind::kResidual) {
    Check(parent && parent->Find(name), name + ": a residual needs the parent's tensor");
    ref = ByteSpan(parent->Find(name)->bytes);
  }
  // The reconstruction, from a scratch writer (a residual needs a link to be accepted).
  auto sink = std::make_unique<MemorySink>();
  Writer w(std::move(sink), Opt(StreamCodec::kStored, false));
  if (kind == QuantKind::kResidual) {
    LinkInfo l;
    l.depth = 1;
    w.SetLink(l);
  }
  Bytes decoded(t.bytes.size());
  MustOk(w.AddQuantizedTensor(t.Spec(), q, ByteSpan(t.indices), ref, MutableByteSpan(decoded)),
         "Quantize '" + name + "'");
  t.bytes = std::move(decoded);
  t.quant = std::move(q);
}

EncodeOptions IndexOpt(StreamCodec index_codec, uint64_t chunk = 1u << 20) {
  EncodeOptions o = Opt(StreamCodec::kStored, false, chunk);
  o.index_codec = index_codec;
  return o;
}

// A keyframe with special values (NaN with payload, infinities, -0, subnormals) for residuals
// to be added to, and a link of it with quantized tensors of every floating dtype.
Ckpt QuantParent(uint64_t seed) {
  Ckpt c = Single({MakeT("w32", DType::kF32, {24, 10}, seed + 1, Role::kWeight),
                   MakeT("w16", DType::kF16, {9, 7}, seed + 2, Role::kWeight),
                   MakeT("wbf", DType::kBF16, {50}, seed + 3, Role::kWeight),
                   MakeT("w64", DType::kF64, {3, 11}, seed + 4, Role::kWeight),
                   MakeT("m", DType::kF32, {24, 10}, seed + 5, Role::kMoment1, 0),
                   MakeT("v", DType::kF32, {24, 10}, seed + 6, Role::kMoment2, 0),
                   MakeT("n", DType::kI64, {}, seed + 7)});
  c.step = 500;
  // Special values at the start of w32, w16 and w64.
  const uint32_t f32s[] = {0x7FA00001u, 0xFF800000u, 0x7F800000u, 0x80000000u, 0x00000001u,
                           0x807FFFFFu, 0x7F7FFFFFu};
  T& w32 = c.tensors[0];
  for (size_t i = 0; i < 7; ++i) StoreElem(w32.bytes.data() + 4 * i, 4, f32s[i]);
  const uint16_t f16s[] = {0x7D01, 0xFC00, 0x8000, 0x0001, 0x7BFF, 0x03FF};
  for (size_t i = 0; i < 6; ++i) StoreElem(c.tensors[1].bytes.data() + 2 * i, 2, f16s[i]);
  const uint64_t f64s[] = {0x7FF0000000000001ull, 0x8000000000000000ull, 0x0000000000000001ull};
  for (size_t i = 0; i < 3; ++i) StoreElem(c.tensors[3].bytes.data() + 8 * i, 8, f64s[i]);
  return c;
}

// Spec 7.6's F16/BF16 rounding, written apart from the library for the double-rounding case:
// `v` (any finite binary64 value) rounded once, to nearest, ties to even, into a float format
// with `mant` fraction bits and smallest normal exponent `emin` (F16: 10, -14; BF16: 7, -126).
// Magnitudes that round past the largest finite value give infinity.
uint16_t RoundOnce(double v, int mant, int emin, int bias) {
  Check(std::isfinite(v), "RoundOnce: not finite");
  const uint16_t sign = std::signbit(v) ? uint16_t(0x8000) : uint16_t(0);
  const double a = std::fabs(v);
  if (a == 0) return sign;
  int e = 0;
  std::frexp(a, &e);
  e -= 1;  // a in [2^e, 2^(e+1))
  const int q = std::max(e, emin) - mant;              // the quantum: one unit in the last place
  const double n = std::nearbyint(std::ldexp(a, -q));  // exact scaling; round to nearest even
  Check(std::fegetround() == FE_TONEAREST, "RoundOnce: rounding mode");
  uint64_t bits;
  if (e < emin) bits = uint64_t(n);  // subnormal (n = 2^mant is the smallest normal)
  else bits = (uint64_t(e + bias) << mant) + (uint64_t(n) - (uint64_t{1} << mant));
  const uint64_t inf = ((uint64_t{1} << (15 - mant)) - 1) << mant;
  return uint16_t(sign | std::min(bits, inf));
}
uint16_t RoundF16(double v) { return RoundOnce(v, 10, -14, 15); }
uint16_t RoundBF16(double v) { return RoundOnce(v, 7, -126, 127); }
double WidenF16(uint16_t h) {
  const int e = (h >> 10) & 0x1F, f = h & 0x3FF;
  Check(e != 0x1F, "WidenF16: not finite");
  const double m = e == 0 ? std::ldexp(f, -24) : std::ldexp(1024 + f, e - 25);
  return (h & 0x8000) ? -m : m;
}
double WidenBF16(uint16_t b) { return double(F32FromBits(uint32_t(b) << 16)); }
// A binary32 centre given as an exact sum of powers of two; checked to be exact.
float ExactF32(double v) {
  const float f = float(v);
  Check(double(f) == v, "ExactF32: not a binary32 value");
  return f;
}

// For an F16/BF16/F64 Residual tensor `t` of `link` against `parent`: checks, with the
// arithmetic above (not the library's), that `t.bytes` is spec 7.6 step 3/4 (round32 of a×g,
// round32 of b + c, then rounded into the dtype), and returns how many elements a decoder
// taking the binary64 path (a×g + c computed in binary64 and rounded once into F16/BF16, the
// single rounding that 7.6 says is not the result) would get wrong.
size_t DoubleRoundingMisses(const T& t, const Ckpt& parent) {
  const T& r = *parent.Find(t.name);
  const QuantizationInfo& q = *t.quant;
  const size_t w = DTypeSize(t.dtype);
  const float g = q.reference_scale;
  size_t misses = 0;
  for (size_t i = 0; i < t.indices.size(); ++i) {
    const uint64_t ref = LoadElem(r.bytes.data() + i * w, w), got = LoadElem(t.bytes.data() + i * w, w);
    const unsigned j = t.indices[i];
    if (t.dtype == DType::kF64) {
      double a;
      std::memcpy(&a, &ref, 8);
      const double b = g == 1.0f ? a : a * double(g);
      const double x = j == 0 ? b : b + double(q.codebook[j - 1]);
      uint64_t xb;
      std::memcpy(&xb, &x, 8);
      Check(xb == got, t.name + ": F64 reconstruction differs from spec 7.6 step 4");
      continue;
    }
    const bool half = t.dtype == DType::kF16;
    Check(half || t.dtype == DType::kBF16, t.name + ": F16, BF16 or F64 only");
    if (g == 1.0f && j == 0) {
      Check(ref == got, t.name + ": a pruned element is not its reference");
      continue;
    }
    const double a64 = half ? WidenF16(uint16_t(ref)) : WidenBF16(uint16_t(ref));
    const float a = float(a64);  // exact
    const float b = g == 1.0f ? a : a * g;
    const float s = j == 0 ? b : b + q.codebook[j - 1];
    const uint16_t spec = half ? RoundF16(double(s)) : RoundBF16(double(s));
    Check(spec == got, t.name + ": reconstruction differs from spec 7.6 step 3");
    const double s64 = (g == 1.0f ? a64 : a64 * double(g)) + (j == 0 ? 0.0 : double(q.codebook[j - 1]));
    const uint16_t once = half ? RoundF16(s64) : RoundBF16(s64);
    misses += once != spec;
  }
  return misses;
}

void QuantizedValid(Suite& s) {
  {
    Ckpt k = Single({MakeT("m", DType::kF32, {40}, 3001, Role::kMoment1),
                     MakeT("h", DType::kBF16, {3, 9}, 3002),
                     MakeT("d", DType::kF64, {5}, 3003)});
    Quantize(k, "m", QuantKind::kDirect, 4, 15, 3011, nullptr);
    Quantize(k, "h", QuantKind::kDirect, 2, 3, 3012, nullptr);
    Quantize(k, "d", QuantKind::kDirect, 8, 200, 3013, nullptr, 1.0f, 2);
    s.Add(Valid("full-quantized-direct-keyframe", "full",
                "Direct quantization in a keyframe (no reference): F32 with 4-bit indices and 15 "
                "centres, BF16 with 2-bit indices (3 centres, rounded into bf16), F64 with 8-bit "
                "indices and 200 centres (widened exactly). Index 0 is +0.0. Packed index "
                "streams, one chunk each.",
                k, Encode(k, IndexOpt(StreamCodec::kPacked)).bytes, {"quant:direct"}));
  }
  {
    Ckpt p = QuantParent(3100);
    Ckpt l = Next(p, 3101);
    l.step = 520;
    Quantize(l, "w32", QuantKind::kResidual, 4, 15, 3111, &p);
    Quantize(l, "w16", QuantKind::kResidual, 3, 7, 3112, &p);
    Quantize(l, "wbf", QuantKind::kResidual, 1, 1, 3113, &p);
    Quantize(l, "w64", QuantKind::kResidual, 5, 31, 3114, &p);
    Quantize(l, "m", QuantKind::kDirect, 4, 15, 3115, nullptr);
    Quantize(l, "v", QuantKind::kResidual, 4, 12, 3116, &p, F32FromBits(0x3FC00001u) /* ~1.5 */);
    s.Add(ChainCase("full-quantized-residual-every-dtype",
                    "A link whose weights are residual-quantized against the keyframe (parent-1.ckz): "
                    "F32 (4-bit, special reference values: NaN with payload, infinities, -0, "
                    "subnormals, the largest finite), F16 (3-bit, rounded into f16), BF16 (1-bit, one "
                    "centre), F64 (5-bit, binary64 sums); 'm' Direct; 'v' a Residual with "
                    "reference_scale 0x3FC00001 (pruned elements are reference × scale). The I64 "
                    "'n' is coded losslessly. Packed indices in 40-byte chunks (so streams of odd "
                    "lengths with zero padding bits).",
                    {{p, Opt(StreamCodec::kStored, false, 40)},
                     {l, IndexOpt(StreamCodec::kPacked, 40)}},
                    {"quant:residual", "quant:direct", "quant:scale", "quant:special-reference"}));
  }
  {
    // Depth 2: the second link's reference is the first link's reconstruction.
    Ckpt p = QuantParent(3200);
    Ckpt l1 = Next(p, 3201), l2;
    Quantize(l1, "w32", QuantKind::kResidual, 4, 15, 3211, &p);
    Quantize(l1, "w16", QuantKind::kResidual, 4, 15, 3212, &p);
    l2 = Next(l1, 3202);
    for (T& t : l2.tensors) t.quant.reset();
    Quantize(l2, "w32", QuantKind::kResidual, 4, 15, 3221, &l1);
    Quantize(l2, "w16", QuantKind::kResidual, 6, 40, 3222, &l1);
    s.Add(ChainCase("full-quantized-chain-depth2",
                    "Two quantized links: input.ckz -> parent-1.ckz (quantized) -> parent-2.ckz "
                    "(keyframe). Each residual is added to the parent's DECODED tensor (the "
                    "closed loop). zstd-compressed index streams, 64-byte chunks.",
                    {{p, Opt(StreamCodec::kZstd, false, 64)},
                     {l1, IndexOpt(StreamCodec::kZstd, 64)},
                     {l2, IndexOpt(StreamCodec::kZstd, 64)}},
                    {"quant:residual"}));
  }
  {
    // Spec 7.6 step 3's two roundings (round32, then into F16/BF16), told apart from one
    // rounding of the exact value, plus reference_scale != 1 for F16, BF16 and F64.
    const auto p2 = [](int e) { return std::ldexp(1.0, e); };
    const float c16 = ExactF32(p2(-11) + p2(-34));             // 0x3A000001
    const float c16d = ExactF32(p2(-11) - p2(-35));            // 0x39FFFFFF
    const float c16s = ExactF32(p2(-11) - p2(-23) + p2(-35));  // 0x39FFF001
    const float cbf = ExactF32(p2(-8) + p2(-30));              // 0x3B800002
    const float cbfd = ExactF32(p2(-8) - p2(-32));             // 0x3B7FFFFF
    const float cbfs = ExactF32(p2(-8) - p2(-23) + p2(-32));   // 0x3B7FFE01
    const float g = F32FromBits(0x3FC00001u);                  // 1.5 + 2^-23
    const float g64 = F32FromBits(0x3F8CCCCDu);                // ~1.1
    Ckpt p = Single({MakeT("h", DType::kF16, {6, 8}, 3401, Role::kWeight),
                     MakeT("hs", DType::kF16, {6, 8}, 3402, Role::kWeight),
                     MakeT("b", DType::kBF16, {5, 8}, 3403, Role::kWeight),
                     MakeT("bs", DType::kBF16, {5, 8}, 3404, Role::kMoment2),
                     MakeT("ds", DType::kF64, {4, 5}, 3405, Role::kMoment2)});
    p.step = 600;
    auto set = [&](const std::string& name, std::vector<uint16_t> v) {
      T& t = p.tensors[p.Index(name)];
      for (size_t i = 0; i < v.size(); ++i) StoreElem(t.bytes.data() + 2 * i, 2, v[i]);
    };
    // References: +-1.0 and 1 + 2^-10 (F16), +-1.0 and 1 + 2^-7 (BF16).
    set("h", {0x3C00, 0xBC00, 0x3C01, 0x3C00});
    set("hs", {0x3C00, 0xBC00, 0x3C00});
    set("b", {0x3F80, 0xBF80, 0x3F81, 0x3F80});
    set("bs", {0x3F80, 0xBF80, 0x3F80});
    Ckpt l = Next(p, 3406);
    l.step = 620;
    // Codebooks: seeded centres, then the constructed ones (unsorted as a whole); indices
    // seeded, with the first elements pointing at the constructed centres.
    auto indices = [](uint64_t n, size_t centres, uint64_t seed, std::vector<uint8_t> head) {
      Rng r(seed);
      Bytes ix(n);
      for (uint64_t i = 0; i < n; ++i)
        ix[i] = i < head.size() ? head[i] : uint8_t(r.Next() % (centres + 1));
      return ix;
    };
    auto book = [](size_t n, uint64_t seed, std::vector<float> extra) {
      std::vector<float> c = Codebook(n, seed);
      c.insert(c.end(), extra.begin(), extra.end());
      return c;
    };
    // h: 3 seeded + {c16, -c16, c16d} = 6 centres (indices 4, 5, 6), 3 bits, g = 1.
    QuantizeCentres(l, "h", QuantKind::kResidual, 3, book(3, 3411, {c16, -c16, c16d}), &p, 1.0f,
                    indices(48, 6, 3412, {4, 5, 6, 0}));
    // hs: 4 seeded + {c16s, -c16s} (indices 5, 6), 3 bits, g = 0x3FC00001.
    QuantizeCentres(l, "hs", QuantKind::kResidual, 3, book(4, 3413, {c16s, -c16s}), &p, g,
                    indices(48, 6, 3414, {5, 6, 0}));
    // b: 4 seeded + {cbf, -cbf, cbfd} (indices 5, 6, 7), 3 bits, g = 1.
    QuantizeCentres(l, "b", QuantKind::kResidual, 3, book(4, 3415, {cbf, -cbf, cbfd}), &p, 1.0f,
                    indices(40, 7, 3416, {5, 6, 7, 0}));
    // bs: 9 seeded + {cbfs, -cbfs} (indices 10, 11), 4 bits, g = 0x3FC00001.
    QuantizeCentres(l, "bs", QuantKind::kResidual, 4, book(9, 3417, {cbfs, -cbfs}), &p, g,
                    indices(40, 11, 3418, {10, 11, 0}));
    // ds: 11 seeded centres, 4 bits, g = 0x3F8CCCCD.
    QuantizeCentres(l, "ds", QuantKind::kResidual, 4, Codebook(11, 3419), &p, g64,
                    indices(20, 11, 3420, {0}));
    // The generator's own arithmetic agrees with the writer's reconstruction, and a decoder
    // that rounds once (the binary64 path) gets the constructed elements wrong: h's 0..2, hs's
    // 0..1, b's 0..2, bs's 0..1.
    const size_t mh = DoubleRoundingMisses(l.tensors[l.Index("h")], p);
    const size_t mhs = DoubleRoundingMisses(l.tensors[l.Index("hs")], p);
    const size_t mb = DoubleRoundingMisses(l.tensors[l.Index("b")], p);
    const size_t mbs = DoubleRoundingMisses(l.tensors[l.Index("bs")], p);
    DoubleRoundingMisses(l.tensors[l.Index("ds")], p);
    Check(mh >= 3 && mhs >= 2 && mb >= 3 && mbs >= 2,
          "double rounding: single rounding would give the same bytes (" + std::to_string(mh) +
              ", " + std::to_string(mhs) + ", " + std::to_string(mb) + ", " +
              std::to_string(mbs) + ")");
    auto bits16 = [&](const std::string& name, size_t i) {
      return Hex(l.tensors[l.Index(name)].bytes.data() + 2 * i, 2);
    };
    Check(bits16("h", 0) == "003c" && bits16("h", 1) == "00bc" && bits16("h", 2) == "023c" &&
              bits16("hs", 0) == "003e" && bits16("b", 0) == "803f" && bits16("b", 2) == "823f" &&
              bits16("bs", 0) == "c03f",
          "double rounding: the constructed elements");
    s.Add(ChainCase(
        "full-quantized-residual-double-rounding-and-scales",
        "Spec 7.6 step 3: s = round32(round32(a x g) + c), then s rounded a second time into F16 "
        "or BF16 (ties to even); NOT the exact a x g + c rounded once. A link (input.ckz) of the "
        "keyframe parent-1.ckz with five Residual tensors, packed indices. 'h' (F16, g = 1, "
        "codebook of 6 unsorted centres): element 0 is reference 1.0 (0x3C00) + centre "
        "2^-11 + 2^-34 (0x3A000001): round32 gives 1 + 2^-11, a tie, so F16 0x3C00 (single "
        "rounding: 0x3C01); element 1 is its negative (0xBC00; single: 0xBC01); element 2 is "
        "1 + 2^-10 (0x3C01) + (2^-11 - 2^-35) (0x39FFFFFF): round32 ties up to 1 + 3x2^-11, "
        "so 0x3C02 (single: 0x3C01); element 3 is pruned (index 0, g = 1: the reference bit for "
        "bit). 'hs' (F16, reference_scale 0x3FC00001 = 1.5 + 2^-23): 1.0 x g = 0x3FC00001, "
        "+ (2^-11 - 2^-23 + 2^-35) (0x39FFF001) rounds in binary32 to the tie 1.5 + 2^-11, "
        "so 0x3E00 (single: 0x3E01); element 1 its negative; element 2 pruned, so "
        "round16(round32(1.0 x g)) = 0x3E00. 'b' (BF16, g = 1, 7 centres): 1.0 (0x3F80) + "
        "(2^-8 + 2^-30) gives 0x3F80 (single: 0x3F81), its negative, and 1 + 2^-7 (0x3F81) + "
        "(2^-8 - 2^-32) gives 0x3F82 (single: 0x3F81). 'bs' (BF16, g = 0x3FC00001, 11 "
        "centres): 1.0 x g + (2^-8 - 2^-23 + 2^-32) gives 0x3FC0 (single: 0x3FC1), and its "
        "negative. 'ds' (F64, g = 0x3F8CCCCD, 11 centres): round64(a x g) then round64(+ c). "
        "The other elements have seeded references, centres and indices.",
        {{p, Opt(StreamCodec::kStored, false)}, {l, IndexOpt(StreamCodec::kPacked)}},
        {"quant:residual", "quant:scale", "quant:double-rounding"}));
  }
}

void QuantizedInvalid(Suite& s) {
  Ckpt p = QuantParent(3300);
  Ckpt l = Next(p, 3301);
  Quantize(l, "w32", QuantKind::kResidual, 4, 15, 3311, &p);
  Quantize(l, "m", QuantKind::kDirect, 4, 15, 3312, nullptr);
  const Encoded parent = Encode(p, Opt(StreamCodec::kStored, false, 64));
  const Encoded link = Encode(l, IndexOpt(StreamCodec::kPacked, 64),
                              LinkTo(parent, p, "parent-1.ckz", 1), &p);
  const size_t w32 = l.Index("w32"), m = l.Index("m");
  auto header_case = [&](const std::string& name, const std::string& rule, ErrorCode error,
                         const std::string& description, std::function<void(Archive&)> edit) {
    Model x = FromFile(link.bytes);
    x.edit = std::move(edit);
    s.Add(ChainInvalid(name, rule, error, description, Assemble(x), parent.bytes));
  };
  header_case("invalid-quant-kind-zero", "Q2", ErrorCode::kFieldOutOfRange,
              "'w32' has a quantization of kind 0 (Invalid).",
              [&](Archive& a) { a.tensors[w32].quantization->kind = QuantKind(0); });
  header_case("invalid-quant-kind-unknown", "Q2", ErrorCode::kFieldOutOfRange,
              "'w32' has a quantization of kind 3 (not defined).",
              [&](Archive& a) { a.tensors[w32].quantization->kind = QuantKind(3); });
  header_case("invalid-quant-bits-zero", "Q3", ErrorCode::kFieldOutOfRange,
              "'m' has 0-bit indices.", [&](Archive& a) { a.tensors[m].quantization->bits = 0; });
  header_case("invalid-quant-bits-nine", "Q3", ErrorCode::kFieldOutOfRange,
              "'m' has 9-bit indices.", [&](Archive& a) { a.tensors[m].quantization->bits = 9; });
  header_case("invalid-quant-codebook-empty", "Q4", ErrorCode::kFieldOutOfRange,
              "'m' has an empty codebook.",
              [&](Archive& a) { a.tensors[m].quantization->codebook.clear(); });
  header_case("invalid-quant-codebook-too-long", "Q4", ErrorCode::kFieldOutOfRange,
              "'m' has 4-bit indices and 16 centres (at most 15 are addressable).",
              [&](Archive& a) { a.tensors[m].quantization->codebook.push_back(0.5f); });
  header_case("invalid-quant-codebook-nan", "Q4", ErrorCode::kFieldOutOfRange,
              "A centre of 'w32' is a NaN.", [&](Archive& a) {
                a.tensors[w32].quantization->codebook[3] = F32FromBits(0x7FC00000u);
              });
  header_case("invalid-quant-codebook-infinity", "Q4", ErrorCode::kFieldOutOfRange,
              "A centre of 'w32' is +infinity.", [&](Archive& a) {
                a.tensors[w32].quantization->codebook[0] = F32FromBits(0x7F800000u);
              });
  header_case("invalid-quant-integer-dtype", "Q5", ErrorCode::kFieldOutOfRange,
              "The I64 scalar 'n' carries a quantization.", [&](Archive& a) {
                a.tensors[l.Index("n")].quantization = a.tensors[m].quantization;
              });
  header_case("invalid-quant-with-predictor", "Q6", ErrorCode::kFieldOutOfRange,
              "'w32' is quantized and also names the XorRef predictor.",
              [&](Archive& a) { a.tensors[w32].predictor = Predictor::kXorRef; });
  header_case("invalid-quant-with-byte-planes", "Q6", ErrorCode::kFieldOutOfRange,
              "'m' is quantized and also has byte planes.",
              [&](Archive& a) { a.tensors[m].byte_planes = true; });
  header_case("invalid-quant-scale-zero", "Q8", ErrorCode::kFieldOutOfRange,
              "'w32' has reference_scale 0.",
              [&](Archive& a) { a.tensors[w32].quantization->reference_scale = 0.0f; });
  header_case("invalid-quant-scale-negative", "Q8", ErrorCode::kFieldOutOfRange,
              "'w32' has reference_scale -1.",
              [&](Archive& a) { a.tensors[w32].quantization->reference_scale = -1.0f; });
  header_case("invalid-quant-scale-nan", "Q8", ErrorCode::kFieldOutOfRange,
              "'w32' has a NaN reference_scale.", [&](Archive& a) {
                a.tensors[w32].quantization->reference_scale = F32FromBits(0x7FC00000u);
              });
  header_case("invalid-quant-direct-scaled", "Q8", ErrorCode::kFieldOutOfRange,
              "'m' is Direct with reference_scale 2 (a Direct quantization has no reference).",
              [&](Archive& a) { a.tensors[m].quantization->reference_scale = 2.0f; });
  {
    // A residual in a keyframe: the link removed (and the reference-chain feature bit).
    Model x = FromFile(link.bytes);
    x.required &= ~uint64_t{1};
    x.edit = [](Archive& a) { a.link.reset(); };
    s.Add(Invalid("invalid-quant-residual-in-keyframe", "full", "Q7", ErrorCode::kBadLink,
                  "A keyframe (no link) with a Residual tensor 'w32': there is no reference.",
                  Assemble(x)));
  }
  {
    // Index values past the codebook: 'm' keeps 4-bit indices but its codebook is cut to 3
    // centres, so indices 4..15 in its stream point past it.
    Model x = FromFile(link.bytes);
    x.edit = [&](Archive& a) { a.tensors[m].quantization->codebook.resize(3); };
    s.Add(ChainInvalid("invalid-quant-index-beyond-codebook", "C6", ErrorCode::kCodebookIndex,
                       "'m' has 15-value indices in its stream but only 3 centres: an index of 4 "
                       "or more must be rejected (not clamped, not read past the codebook).",
                       Assemble(x), parent.bytes));
  }
  {
    // A packed stream with a non-zero padding bit: the last byte of the first chunk of 'm' has
    // its high nibble unused when the chunk holds an odd number of indices.
    Ckpt lo = l;
    T& t = lo.tensors[m];
    t.shape = {23};
    t.owner = -1;  // no longer the shape of its weight
    t.role = Role::kOther;
    t.bytes.resize(23 * 4);
    t.indices.resize(23);
    lo.files[0].tensors = {};
    for (const T& u : lo.tensors) lo.files[0].tensors.push_back(u.name);
    const Encoded odd = Encode(lo, IndexOpt(StreamCodec::kPacked, 1u << 20),
                               LinkTo(parent, p, "parent-1.ckz", 1), &p);
    Model x = FromFile(odd.bytes);
    Bytes& chunk = x.stored[m][0];
    Check(chunk[0] == uint8_t(StreamCodec::kPacked), "packed stream expected");
    chunk.back() |= 0x80;
    s.Add(ChainInvalid("invalid-quant-packed-padding", "C2", ErrorCode::kChunkDecodeFailed,
                       "'m' has 23 4-bit indices, packed into 12 bytes; the unused high nibble of "
                       "the last byte has a bit set.",
                       Assemble(x), parent.bytes));
  }
}

// ------------------------------------------------------------------------------------------
// Full profile: cm-coded index streams (spec 7.7).

// Index patterns shaped like ExCP's (what the cm contexts are for): a weight's indices pruned
// in whole rows now and then and elsewhere about one in four, values often repeating the left
// neighbour's.
Bytes WeightIndices(uint64_t n, uint64_t row, size_t centres, uint64_t seed) {
  Rng r(seed);
  Bytes out(n);
  for (uint64_t i = 0; i < n; ++i) {
    const bool pruned_row = row != 0 && (i / row) % 5 == 3;
    if (pruned_row || r.Below(4) == 0) continue;
    const bool same = i > 0 && out[i - 1] != 0 && r.Below(2) == 0;
    out[i] = same ? out[i - 1] : uint8_t(1 + r.Below(centres));
  }
  return out;
}

// Indices that follow `like` (with `like_centres` centres): non-zero only where `like` is
// (kept with probability keep/8), plus one in `extra` of the other elements (0: none); values
// mostly near like's rank, so the value contexts see related buckets.
Bytes FollowIndices(const Bytes& like, size_t like_centres, size_t centres, uint64_t seed,
                    unsigned keep = 7, unsigned extra = 16) {
  Rng r(seed);
  Bytes out(like.size());
  for (size_t i = 0; i < like.size(); ++i) {
    if (like[i] != 0 ? r.Below(8) >= keep : (extra == 0 || r.Below(extra) != 0)) continue;
    // Mostly near like's rank; now and then anywhere (real moments are not that tidy).
    const uint64_t rank = like[i] == 0 || r.Below(4) == 0 ? r.Below(centres)
                                                           : (like[i] - 1) * centres / like_centres;
    out[i] = uint8_t(1 + (rank + r.Below(3)) % centres);
  }
  return out;
}

// The contexts of spec 7.7.2 that the cm chunks of `file` use, computed here from the case's
// own indices (independently of the library's model): SIG context numbers 0..44 into `sig`,
// VAL contexts 0..63 into `val`.
void CmContexts(const Ckpt& c, const Ckpt* parent, const Bytes& file, std::set<uint32_t>* sig,
                std::set<uint32_t>* val) {
  const Archive a = Must(ParseArchive(ByteSpan(file)), "CmContexts");
  auto bucket = [](uint32_t j, uint32_t k) { return j == 0 ? 0u : 1 + (j - 1) * 3 / k; };
  std::vector<CmTensorRole> roles;
  for (const T& u : c.tensors) roles.push_back({u.role, u.owner, u.quant.has_value()});
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    const TensorInfo& ti = a.tensors[t];
    const T& mine = c.tensors[c.Index(ti.name)];
    if (!ti.quantization) continue;
    const uint32_t k = uint32_t(ti.quantization->codebook.size());
    const T* p = parent ? parent->Find(ti.name) : nullptr;
    if (p && !(p->quant && p->dtype == mine.dtype && p->shape == mine.shape)) p = nullptr;
    const int ax = CmAuxTensor(roles, c.Index(ti.name));
    const T* aux = ax >= 0 ? &c.tensors[size_t(ax)] : nullptr;
    const uint64_t row = ti.shape.size() >= 2 ? ti.shape.back() : 0;
    for (const ChunkInfo& ch : ti.chunks) {
      if (file[ch.offset] != uint8_t(StreamCodec::kCm)) continue;
      const uint64_t f = ch.raw_offset / DTypeSize(ti.dtype), e = ch.raw_length / DTypeSize(ti.dtype);
      const uint8_t* j = mine.indices.data() + f;
      for (uint64_t i = 0; i < e; ++i) {
        const uint64_t col = row ? (f + i) % row : 0;
        const bool has_left = i >= 1 && (row == 0 || col != 0);
        uint32_t nbr = has_left && j[i - 1] != 0;
        if (row && i >= row) nbr += j[i - row] != 0;
        if (row && i >= row + 1 && col != 0) nbr += j[i - row - 1] != 0;
        if (row && i >= row && col + 1 < row) nbr += j[i - row + 1] != 0;
        const uint32_t pc = p ? 1 + (p->indices[f + i] != 0) : 0;
        const uint32_t ac = aux ? 1 + (aux->indices[f + i] != 0) : 0;
        sig->insert((pc * 5 + nbr) * 3 + ac);
        if (j[i] == 0) continue;
        const uint32_t ab = aux ? bucket(aux->indices[f + i], uint32_t(aux->quant->codebook.size())) : 0;
        const uint32_t pb = p ? bucket(p->indices[f + i], uint32_t(p->quant->codebook.size())) : 0;
        const uint32_t lb = has_left ? bucket(j[i - 1], k) : 0;
        val->insert((ab * 4 + pb) * 4 + lb);
      }
    }
  }
}

// Chunk `chunk` of tensor `name` of `file` (one cm stream) decoded by the library's model with
// the parent and aux indices given (each the indices of the chunk's first element on, or null:
// none), as a decoder with that reading of spec 7.7.2 would decode it. Nothing when the stream
// fails (C6 or finish).
std::optional<Bytes> CmDecodeChunk(const Bytes& file, const std::string& name, size_t chunk,
                                   const uint8_t* parent, uint32_t parent_centres,
                                   const uint8_t* aux, uint32_t aux_centres) {
  const Archive a = Must(ParseArchive(ByteSpan(file)), "CmDecodeChunk");
  const auto t = a.FindTensor(name);
  Check(t.has_value() && a.tensors[*t].quantization && chunk < a.tensors[*t].chunks.size(),
        "CmDecodeChunk: no quantized tensor '" + name + "' with that chunk");
  const TensorInfo& ti = a.tensors[*t];
  const auto dir = Must(ReadStreamDirectory(a, *t, chunk), "CmDecodeChunk: stream directory");
  Check(dir.size() == 1 && dir[0].codec == StreamCodec::kCm, "'" + name + "': cm stream expected");
  const uint64_t w = DTypeSize(ti.dtype);
  IndexModelInputs in;
  in.centres = uint32_t(ti.quantization->codebook.size());
  in.first = ti.chunks[chunk].raw_offset / w;
  in.row = ti.shape.size() >= 2 ? ti.shape.back() : 0;
  in.parent = parent;
  in.parent_centres = parent_centres;
  in.aux = aux;
  in.aux_centres = aux_centres;
  Bytes out(ti.chunks[chunk].raw_length / w);
  size_t bad = 0;
  if (DecodeIndexStream(in, file.data() + dir[0].offset, size_t(dir[0].stored_length), out.data(),
                        out.size(), &bad) != IndexDecodeResult::kOk)
    return std::nullopt;
  return out;
}

// The first element and the element count of each chunk of tensor `name` of `file`.
std::vector<std::pair<uint64_t, uint64_t>> ChunkElements(const Bytes& file,
                                                         const std::string& name) {
  const Archive a = Must(ParseArchive(ByteSpan(file)), "ChunkElements");
  const TensorInfo& ti = a.tensors[*a.FindTensor(name)];
  const uint64_t w = DTypeSize(ti.dtype);
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const ChunkInfo& c : ti.chunks) out.push_back({c.raw_offset / w, c.raw_length / w});
  return out;
}

void CmValid(Suite& s) {
  std::set<uint32_t> sig, val;
  {
    // A keyframe: Direct tensors only, so no parent; aux contexts from the moments.
    Ckpt k = Single({MakeT("w", DType::kF32, {16, 12}, 4001, Role::kWeight),
                     MakeT("m", DType::kF32, {16, 12}, 4002, Role::kMoment1, 0),
                     MakeT("v", DType::kF32, {16, 12}, 4003, Role::kMoment2, 0),
                     MakeT("b", DType::kBF16, {90}, 4004),
                     MakeT("h", DType::kF16, {6, 11}, 4005),
                     MakeT("e", DType::kF32, {20, 30}, 4006),
                     MakeT("z", DType::kF32, {8, 8}, 4007),
                     MakeT("col", DType::kF32, {40, 1}, 4008)});
    QuantizeWith(k, "w", QuantKind::kDirect, 4, 15, 4011, nullptr, 1.0f,
                 WeightIndices(192, 12, 15, 4021));
    const Bytes& wi = k.tensors[0].indices;
    QuantizeWith(k, "m", QuantKind::kDirect, 4, 12, 4012, nullptr, 1.0f,
                 FollowIndices(wi, 15, 12, 4022));
    const Bytes& mi = k.tensors[1].indices;
    QuantizeWith(k, "v", QuantKind::kDirect, 3, 7, 4013, nullptr, 1.0f,
                 FollowIndices(mi, 12, 7, 4023, 8, 0));
    QuantizeWith(k, "b", QuantKind::kDirect, 1, 1, 4014, nullptr, 1.0f,
                 WeightIndices(90, 0, 1, 4024));
    QuantizeWith(k, "h", QuantKind::kDirect, 2, 3, 4015, nullptr, 1.0f,
                 WeightIndices(66, 11, 3, 4025));
    QuantizeWith(k, "e", QuantKind::kDirect, 8, 255, 4016, nullptr, 1.0f,
                 WeightIndices(600, 30, 255, 4026));
    QuantizeWith(k, "z", QuantKind::kDirect, 4, 15, 4017, nullptr, 1.0f, Bytes(64, 0));
    QuantizeWith(k, "col", QuantKind::kDirect, 2, 2, 4018, nullptr, 1.0f,
                 WeightIndices(40, 1, 2, 4028));
    const Bytes file = Encode(k, IndexOpt(StreamCodec::kCm, 200)).bytes;
    CmContexts(k, nullptr, file, &sig, &val);
    s.Add(Valid("full-cm-keyframe", "full",
                "cm-coded index streams (spec 7.7) in a keyframe, 200-byte chunks: Direct 'w' "
                "(Weight, 15 centres, rows of 12: chunks start mid-row, so the up/up-left/"
                "up-right neighbours of a chunk's first row are absent), 'm' (Moment1: aux = "
                "'w', non-zero only where 'w' is, with a few exceptions), 'v' (Moment2: aux = "
                "'m', non-zero exactly where 'm' is); 'b' 1-D BF16 with 1-bit indices (one "
                "centre: no value bits), 'h' F16 with 2-bit indices (3 centres), 'e' 8-bit "
                "indices (255 centres, 8 value bits), 'z' all pruned (each cm stream is empty), "
                "'col' of shape [40, 1] (rows of one element: never a left neighbour).",
                k, file, {"codec:cm", "quant:direct", "cm:aux", "cm:mid-row", "cm:empty-stream"}));
  }
  {
    // A link to an unquantized keyframe: residual weights, moments with every aux rule.
    Ckpt p = Single({MakeT("w", DType::kF32, {16, 12}, 4101, Role::kWeight),
                     MakeT("m", DType::kF32, {16, 12}, 4102, Role::kMoment1, 0),
                     MakeT("v", DType::kF32, {16, 12}, 4103, Role::kMoment2, 0),
                     MakeT("w2", DType::kF16, {9, 7}, 4104, Role::kWeight),
                     MakeT("m2", DType::kF16, {9, 7}, 4105, Role::kMoment1, 3),
                     MakeT("v2", DType::kF16, {9, 7}, 4106, Role::kMoment2, 3),
                     MakeT("w3", DType::kF32, {6, 8}, 4107, Role::kWeight),
                     MakeT("m3a", DType::kF32, {6, 8}, 4108, Role::kMoment1, 6),
                     MakeT("m3b", DType::kF32, {6, 8}, 4109, Role::kMoment1, 6),
                     MakeT("v3", DType::kF32, {6, 8}, 4110, Role::kMoment2, 6),
                     MakeT("w5", DType::kF32, {5, 9}, 4111, Role::kWeight),
                     MakeT("m5", DType::kF32, {5, 9}, 4112, Role::kMoment1, 10),
                     MakeT("v5", DType::kF32, {5, 9}, 4113, Role::kMoment2, 10)});
    p.step = 1000;
    Ckpt l = Next(p, 4120);
    QuantizeWith(l, "w", QuantKind::kResidual, 4, 15, 4121, &p, 1.0f,
                 WeightIndices(192, 12, 15, 4131));
    QuantizeWith(l, "m", QuantKind::kDirect, 4, 15, 4122, nullptr, 1.0f,
                 FollowIndices(l.tensors[0].indices, 15, 15, 4132));
    QuantizeWith(l, "v", QuantKind::kResidual, 4, 12, 4123, &p, F32FromBits(0x3FC00001u),
                 FollowIndices(l.tensors[1].indices, 15, 12, 4133, 8, 0));
    QuantizeWith(l, "w2", QuantKind::kResidual, 3, 7, 4124, &p, 1.0f,
                 WeightIndices(63, 7, 7, 4134));
    QuantizeWith(l, "v2", QuantKind::kDirect, 3, 5, 4125, nullptr, 1.0f,
                 FollowIndices(l.tensors[3].indices, 7, 5, 4135));
    QuantizeWith(l, "w3", QuantKind::kResidual, 2, 3, 4126, &p, 1.0f,
                 WeightIndices(48, 8, 3, 4136));
    QuantizeWith(l, "m3a", QuantKind::kDirect, 4, 9, 4127, nullptr, 1.0f,
                 FollowIndices(l.tensors[6].indices, 3, 9, 4137));
    QuantizeWith(l, "m3b", QuantKind::kDirect, 4, 10, 4128, nullptr, 1.0f,
                 FollowIndices(l.tensors[6].indices, 3, 10, 4138));
    QuantizeWith(l, "v3", QuantKind::kDirect, 4, 11, 4129, nullptr, 1.0f,
                 FollowIndices(l.tensors[6].indices, 3, 11, 4139));
    QuantizeWith(l, "m5", QuantKind::kDirect, 4, 13, 4130, nullptr, 1.0f,
                 WeightIndices(45, 9, 13, 4140));
    QuantizeWith(l, "v5", QuantKind::kDirect, 4, 14, 4141, nullptr, 1.0f,
                 FollowIndices(l.tensors[11].indices, 13, 14, 4142, 8, 0));
    const std::vector<Level> levels = {{p, Opt(StreamCodec::kStored, false)},
                                       {l, IndexOpt(StreamCodec::kCm, 200)}};
    CmContexts(l, &p, WriteChain(levels, ChainNames(2)).back().bytes, &sig, &val);
    s.Add(ChainCase("full-cm-link-moments",
                    "A link (cm-coded, 200-byte chunks) to an unquantized keyframe "
                    "(parent-1.ckz): no parent indices, yet the parent file is needed. 'w' "
                    "Residual; 'm' (Moment1) has aux 'w'; 'v' (Moment2, Residual with "
                    "reference_scale 0x3FC00001) has aux 'm'. 'v2' has aux 'w2', its owner, as "
                    "its Moment1 'm2' is not quantized. 'w3' has two quantized Moment1 ('m3a', "
                    "'m3b', aux 'w3'), so 'v3' has aux 'w3'. 'w5' is not quantized: 'm5' has no "
                    "aux and 'v5' has aux 'm5'. Aux codebooks differ in size from the tensor's.",
                    levels, {"codec:cm", "quant:residual", "cm:aux", "cm:aux-owner-fallback"}));
  }
  {
    // Depth 2: the first link's indices are the second link's temporal context.
    Ckpt p = Single({MakeT("w", DType::kF32, {16, 12}, 4201, Role::kWeight),
                     MakeT("m", DType::kF32, {16, 12}, 4202, Role::kMoment1, 0),
                     MakeT("v", DType::kF32, {16, 12}, 4203, Role::kMoment2, 0),
                     MakeT("s", DType::kF32, {6, 8}, 4204),
                     MakeT("u", DType::kF32, {7, 5}, 4205),
                     MakeT("g", DType::kF32, {30, 12}, 4206, Role::kWeight),
                     MakeT("gm", DType::kF32, {30, 12}, 4207, Role::kMoment1, 5)});
    Ckpt l1 = Next(p, 4210);
    // 'g' and its moment: indices unrelated to each other and to the parent's (every
    // combination of aux, parent and left buckets occurs).
    QuantizeWith(l1, "g", QuantKind::kResidual, 4, 15, 4215, &p, 1.0f,
                 WeightIndices(360, 12, 15, 4225));
    QuantizeWith(l1, "gm", QuantKind::kDirect, 4, 14, 4216, nullptr, 1.0f,
                 WeightIndices(360, 12, 14, 4226));
    QuantizeWith(l1, "w", QuantKind::kResidual, 4, 15, 4211, &p, 1.0f,
                 WeightIndices(192, 12, 15, 4221));
    QuantizeWith(l1, "m", QuantKind::kDirect, 4, 15, 4212, nullptr, 1.0f,
                 FollowIndices(l1.tensors[0].indices, 15, 15, 4222));
    QuantizeWith(l1, "v", QuantKind::kDirect, 4, 12, 4213, nullptr, 1.0f,
                 FollowIndices(l1.tensors[1].indices, 15, 12, 4223, 8, 0));
    QuantizeWith(l1, "s", QuantKind::kDirect, 3, 6, 4214, nullptr, 1.0f,
                 WeightIndices(48, 8, 6, 4224));
    Ckpt l2 = Next(l1, 4230);
    for (T& t : l2.tensors) t.quant.reset();
    // The temporal context: l2's weight indices follow l1's (another codebook size).
    QuantizeWith(l2, "w", QuantKind::kResidual, 5, 24, 4231, &l1, 1.0f,
                 FollowIndices(l1.tensors[0].indices, 15, 24, 4241, 6, 6));
    QuantizeWith(l2, "m", QuantKind::kDirect, 4, 15, 4232, nullptr, 1.0f,
                 FollowIndices(l2.tensors[0].indices, 24, 15, 4242, 8, 3));
    QuantizeWith(l2, "v", QuantKind::kResidual, 3, 7, 4233, &l1, 1.0f,
                 FollowIndices(l2.tensors[1].indices, 15, 7, 4243, 8, 0));
    QuantizeWith(l2, "g", QuantKind::kResidual, 4, 13, 4236, &l1, 1.0f,
                 WeightIndices(360, 12, 13, 4246));
    QuantizeWith(l2, "gm", QuantKind::kDirect, 4, 15, 4237, nullptr, 1.0f,
                 WeightIndices(360, 12, 15, 4247));
    // 's' changes shape: no parent indices (spec 7.7.2 wants the same dtype and shape).
    l2.tensors[3].shape = {8, 6};
    l2.tensors[3].predict = false;
    QuantizeWith(l2, "s", QuantKind::kDirect, 3, 6, 4234, nullptr, 1.0f,
                 WeightIndices(48, 6, 6, 4244));
    // 'u' is quantized in l2 only: its parent tensor has no indices.
    QuantizeWith(l2, "u", QuantKind::kResidual, 2, 3, 4235, &l1, 1.0f,
                 WeightIndices(35, 5, 3, 4245));
    const std::vector<Level> levels = {{p, Opt(StreamCodec::kStored, false)},
                                       {l1, IndexOpt(StreamCodec::kCm, 200)},
                                       {l2, IndexOpt(StreamCodec::kCm, 152)}};
    CmContexts(l1, &p, WriteChain(levels, ChainNames(3))[1].bytes, &sig, &val);
    CmContexts(l2, &l1, WriteChain(levels, ChainNames(3))[2].bytes, &sig, &val);
    s.Add(ChainCase("full-cm-chain-depth2",
                    "input.ckz -> parent-1.ckz -> parent-2.ckz (keyframe), both links cm-coded "
                    "(200- and 152-byte chunks, so the chunks of the two links do not line up). "
                    "input.ckz's 'w', 'm' and 'v' have parent indices: the decoded indices of "
                    "parent-1.ckz's tensors of the same name (element by element, across "
                    "parent-1's chunk boundaries; codebooks of other sizes), which a decoder "
                    "must decode (with their own aux contexts) first. 's' has another shape "
                    "than parent-1's 's' and 'u' is not quantized in parent-1: neither has "
                    "parent indices. 'g' and its Moment1 'gm' have indices unrelated to each other "
                    "and to parent-1's.",
                    levels, {"codec:cm", "quant:residual", "cm:parent", "cm:aux"}));
  }
  {
    // The parent has the tensor with the same name and shape, quantized, but another dtype:
    // no parent indices (spec 7.7.2). The link's 'w' is Direct (a Residual would need a
    // reference of the same dtype, R3).
    Ckpt p = Single({MakeT("w", DType::kF16, {16, 12}, 4401, Role::kWeight)});
    p.step = 2000;
    QuantizeWith(p, "w", QuantKind::kDirect, 4, 15, 4411, nullptr, 1.0f,
                 WeightIndices(192, 12, 15, 4421));
    Ckpt l = Single({MakeT("w", DType::kF32, {16, 12}, 4402, Role::kWeight)});
    l.step = 2100;
    l.tensors[0].predict = false;
    // Indices that follow the parent's: what parent contexts would pick up, were they used.
    QuantizeWith(l, "w", QuantKind::kDirect, 4, 15, 4412, nullptr, 1.0f,
                 FollowIndices(p.tensors[0].indices, 15, 15, 4422));
    const std::vector<Level> levels = {{p, IndexOpt(StreamCodec::kCm)},
                                       {l, IndexOpt(StreamCodec::kCm, 200)}};
    const Bytes file = WriteChain(levels, ChainNames(2)).back().bytes;
    // Without parent indices each chunk decodes to 'w''s indices; with the parent's F16 indices
    // as contexts (a parent match by name and shape alone), to others or not at all.
    const auto chunks = ChunkElements(file, "w");
    Check(chunks.size() == 4, "parent-other-dtype: 'w' has 4 chunks");
    const Bytes& pi = p.tensors[0].indices;
    const Bytes& li = l.tensors[0].indices;
    for (size_t c = 0; c < chunks.size(); ++c) {
      const auto [f, e] = chunks[c];
      const Bytes want(li.begin() + long(f), li.begin() + long(f + e));
      Check(CmDecodeChunk(file, "w", c, nullptr, 0, nullptr, 0) == want,
            "parent-other-dtype: chunk " + std::to_string(c) + " decodes without parent indices");
      Check(CmDecodeChunk(file, "w", c, pi.data() + f, 15, nullptr, 0) != want,
            "parent-other-dtype: chunk " + std::to_string(c) +
                " decodes to the same indices with the parent's indices as contexts");
    }
    s.Add(ChainCase("full-cm-parent-other-dtype",
                    "A link (input.ckz) to a keyframe (parent-1.ckz) that both have a quantized "
                    "tensor 'w' of shape [16, 12], cm-coded: F32 (Direct, 15 centres, 200-byte "
                    "chunks) in the link, F16 (Direct, 15 centres) in the parent. Spec 7.7.2: "
                    "parent indices come only from a parent tensor with the same name, dtype "
                    "and shape, so the link's 'w' has none (pc = pb = 0); another dtype is not an "
                    "error here, and the parent file is still needed (a cm chunk of a link). 'w' "
                    "is Direct: a Residual would need a reference of the same dtype (R3). Its "
                    "indices follow the parent's, and a decoder that matched the parent's "
                    "tensor by name and shape alone, taking the F16 indices as contexts, gets "
                    "no chunk right: each decodes to other indices or stops at an index above "
                    "K (checked by the generator), so that decoder rejects this valid file.",
                    levels, {"codec:cm", "quant:direct", "cm:parent-other-dtype"}));
  }
  {
    // Moments with owner -1: no aux tensor (spec 7.7.2), though the file has exactly one
    // quantized Moment1 and one quantized Moment2, both without owner.
    Ckpt k = Single({MakeT("m", DType::kF32, {16, 12}, 4501, Role::kMoment1),
                     MakeT("v", DType::kF32, {16, 12}, 4502, Role::kMoment2)});
    QuantizeWith(k, "m", QuantKind::kDirect, 4, 15, 4511, nullptr, 1.0f,
                 WeightIndices(192, 12, 15, 4521));
    QuantizeWith(k, "v", QuantKind::kDirect, 3, 7, 4512, nullptr, 1.0f,
                 FollowIndices(k.tensors[0].indices, 15, 7, 4522, 8, 0));
    std::vector<CmTensorRole> roles;
    for (const T& u : k.tensors) roles.push_back({u.role, u.owner, u.quant.has_value()});
    Check(CmAuxTensor(roles, 0) == -1 && CmAuxTensor(roles, 1) == -1,
          "moments-without-owner: the library gives a moment with owner -1 an aux tensor");
    const Bytes file = Encode(k, IndexOpt(StreamCodec::kCm, 200)).bytes;
    // Without aux indices 'v' decodes to its indices; with 'm''s as aux (the old literal
    // reading: "the single quantized Moment1 with the same owner", -1), to others.
    const Bytes& mi = k.tensors[0].indices;
    const Bytes& vi = k.tensors[1].indices;
    const auto chunks = ChunkElements(file, "v");
    Check(chunks.size() == 4, "moments-without-owner: 'v' has 4 chunks");
    for (size_t c = 0; c < chunks.size(); ++c) {
      const auto [f, e] = chunks[c];
      const Bytes want(vi.begin() + long(f), vi.begin() + long(f + e));
      Check(CmDecodeChunk(file, "v", c, nullptr, 0, nullptr, 0) == want,
            "moments-without-owner: chunk " + std::to_string(c) + " decodes without aux");
      Check(CmDecodeChunk(file, "v", c, nullptr, 0, mi.data() + f, 15) != want,
            "moments-without-owner: chunk " + std::to_string(c) +
                " of 'v' decodes to the same indices with 'm' as aux");
    }
    s.Add(Valid("full-cm-moments-without-owner", "full",
                "A keyframe with a quantized Moment1 'm' and a quantized Moment2 'v', both "
                "F32 [16, 12] with owner = -1, cm-coded in 200-byte chunks (Direct; 15 and 7 "
                "centres). Spec 7.7.2: only a moment whose owner is not -1 has an aux tensor, so "
                "neither has aux indices (ac = ab = 0). 'v' is non-zero exactly where 'm' is, "
                "and a decoder that took 'm' as the aux tensor of 'v' (as the only quantized "
                "Moment1 with the same owner, -1) gets no chunk of 'v' right: each decodes to "
                "other indices or stops at an index above K (checked by the generator), so "
                "that decoder rejects this valid file.",
                k, file, {"codec:cm", "quant:direct", "cm:moments-without-owner"}));
  }
  {
    // Aux tensors of another dtype: a BF16 Weight, its F32 Moment1 and F16 Moment2, 200-byte
    // chunks of each (100, 50 and 100 elements).
    Ckpt k = Single({MakeT("w", DType::kBF16, {16, 12}, 4601, Role::kWeight),
                     MakeT("m", DType::kF32, {16, 12}, 4602, Role::kMoment1, 0),
                     MakeT("v", DType::kF16, {16, 12}, 4603, Role::kMoment2, 0)});
    QuantizeWith(k, "w", QuantKind::kDirect, 4, 15, 4611, nullptr, 1.0f,
                 WeightIndices(192, 12, 15, 4621));
    QuantizeWith(k, "m", QuantKind::kDirect, 4, 12, 4612, nullptr, 1.0f,
                 FollowIndices(k.tensors[0].indices, 15, 12, 4622));
    QuantizeWith(k, "v", QuantKind::kDirect, 3, 7, 4613, nullptr, 1.0f,
                 FollowIndices(k.tensors[1].indices, 12, 7, 4623, 8, 0));
    const Bytes file = Encode(k, IndexOpt(StreamCodec::kCm, 200)).bytes;
    using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
    Check(ChunkElements(file, "w") == Ranges{{0, 100}, {100, 92}} &&
              ChunkElements(file, "m") == Ranges{{0, 50}, {50, 50}, {100, 50}, {150, 42}} &&
              ChunkElements(file, "v") == Ranges{{0, 100}, {100, 92}},
          "aux-other-dtype: chunk layout");
    // Each chunk decodes with the aux tensor's indices at the same ELEMENTS; with those at the
    // same BYTE offset of the aux tensor (element raw_offset / aux width, which is element 100
    // of 'w' for 'm''s chunk 1 and element 50 of 'm' for 'v''s chunk 1), to others.
    struct AuxUse {
      const char* name;
      size_t me, aux;
    };
    for (const AuxUse r : {AuxUse{"m", 1, 0}, AuxUse{"v", 2, 1}}) {
      const T& me = k.tensors[r.me];
      const T& aux = k.tensors[r.aux];
      const uint32_t aux_k = uint32_t(aux.quant->codebook.size());
      const auto chunks = ChunkElements(file, r.name);
      for (size_t c = 0; c < chunks.size(); ++c) {
        const auto [f, e] = chunks[c];
        const Bytes want(me.indices.begin() + long(f), me.indices.begin() + long(f + e));
        Check(CmDecodeChunk(file, r.name, c, nullptr, 0, aux.indices.data() + f, aux_k) == want,
              std::string("aux-other-dtype: '") + r.name + "' chunk " + std::to_string(c));
      }
      const auto [f, e] = chunks[1];
      const uint64_t by_bytes = f * DTypeSize(me.dtype) / DTypeSize(aux.dtype);
      Check(by_bytes != f && by_bytes + e <= aux.indices.size(), "aux-other-dtype: byte reading");
      const Bytes want(me.indices.begin() + long(f), me.indices.begin() + long(f + e));
      Check(CmDecodeChunk(file, r.name, 1, nullptr, 0, aux.indices.data() + by_bytes, aux_k) !=
                want,
            std::string("aux-other-dtype: chunk 1 of '") + r.name +
                "' decodes to the same indices with aux indices found by bytes");
    }
    s.Add(Valid("full-cm-aux-other-dtype", "full",
                "A keyframe, cm-coded in 200-byte chunks (Direct): Weight 'w' BF16 [16, 12] "
                "(chunks of 100 elements: 0-99, 100-191), its Moment1 'm' F32 (aux 'w'; chunks "
                "of 50 elements: 0-49, 50-99, 100-149, 150-191) and its Moment2 'v' F16 (aux "
                "'m'; chunks 0-99, 100-191). Spec 7.7.2: the aux tensor has the tensor's shape "
                "but may have another dtype, and its index for element f + i is that of ELEMENT "
                "f + i, not of the same byte offset or chunk number: 'm''s chunk 1 (bytes "
                "200-399 of 'm') reads elements 50-99 of 'w' (bytes 100-199, inside 'w''s chunk "
                "0), and 'v''s chunk 1 (elements 100-191) reads elements 100-191 of 'm', from "
                "two of 'm''s chunks. A decoder that took the aux index at the same byte offset "
                "(elements 100-149 of 'w', elements 50-141 of 'm') gets neither chunk right: each "
                "decodes to other indices or stops at an index above K (checked by the "
                "generator), so that decoder rejects this valid file.",
                k, file, {"codec:cm", "quant:direct", "cm:aux", "cm:aux-other-dtype"}));
  }
  // Every context of spec 7.7.2 is used by some cm chunk above.
  for (uint32_t x = 0; x < 45; ++x)
    Check(sig.count(x) == 1, "no cm case uses SIG context " + std::to_string(x) + " (pc " +
                                 std::to_string(x / 15) + ", nbr " + std::to_string(x / 3 % 5) +
                                 ", ac " + std::to_string(x % 3) + ")");
  for (uint32_t x = 0; x < 64; ++x)
    Check(val.count(x) == 1, "no cm case uses VAL context " + std::to_string(x));
}

// Replaces stream 0 of a one-stream chunk (its directory length too).
void SetStream(Bytes& chunk, const Bytes& stream) {
  chunk.resize(kStreamEntryBytes);
  StoreLE32(chunk.data() + 1, uint32_t(stream.size()));
  chunk.insert(chunk.end(), stream.begin(), stream.end());
}

void CmInvalid(Suite& s) {
  // A keyframe: 'w' (16 centres: every 4-bit value is a valid index, so damage cannot end in
  // CodebookIndex), 'c' (4 centres, first index 4), 'n' lossless.
  Ckpt k = Single({MakeT("w", DType::kF32, {16, 12}, 4301, Role::kWeight),
                   MakeT("c", DType::kF32, {30}, 4302), MakeT("n", DType::kI64, {3}, 4303)});
  QuantizeWith(k, "w", QuantKind::kDirect, 5, 16, 4311, nullptr, 1.0f,
               WeightIndices(192, 12, 16, 4321));
  Bytes ci = WeightIndices(30, 0, 4, 4322);
  ci[0] = 4;
  QuantizeWith(k, "c", QuantKind::kDirect, 3, 4, 4312, nullptr, 1.0f, ci);
  const Bytes file = Encode(k, IndexOpt(StreamCodec::kCm)).bytes;
  const Model base = FromFile(file);
  const Bytes& wchunk = base.stored[0][0];
  Check(wchunk[0] == uint8_t(StreamCodec::kCm), "cm stream expected");
  const Bytes stream(wchunk.begin() + kStreamEntryBytes, wchunk.end());
  auto with_stream = [&](const Bytes& st) {
    Model x = base;
    SetStream(x.stored[0][0], st);
    return Assemble(x);
  };
  {
    Bytes st(stream.begin(), stream.begin() + long(stream.size() / 2));
    s.Add(Invalid("invalid-cm-truncated", "full", "C5", ErrorCode::kChunkChecksum,
                  "The cm stream of 'w' cut to half its bytes (the directory length with it). A "
                  "decoder reads zeros past the end (7.7.1) and so decodes other indices: the "
                  "chunk's CRC-32C does not match.",
                  with_stream(st), {"codec:cm"}));
  }
  {
    Bytes st = stream;
    st[st.size() / 2] ^= 0x55;
    s.Add(Invalid("invalid-cm-corrupted", "full", "C5", ErrorCode::kChunkChecksum,
                  "A byte in the middle of the cm stream of 'w' changed: it decodes (every 4-bit "
                  "value is an index of its 16 centres) to other indices, and the chunk's "
                  "CRC-32C does not match.",
                  with_stream(st), {"codec:cm"}));
  }
  {
    // The decoder consumes the stream plus the zero bytes the encoder dropped: find that count
    // (zeros up to it keep the stream valid), then put one byte after it.
    IndexModelInputs in;
    in.centres = 16;
    in.row = 12;
    Bytes out(192);
    size_t bad = 0;
    Bytes st = stream;
    auto valid = [&](const Bytes& b) {
      return DecodeIndexStream(in, b.data(), b.size(), out.data(), out.size(), &bad) ==
                 IndexDecodeResult::kOk && out == k.tensors[0].indices;
    };
    Check(valid(st), "cm stream of 'w' decodes");
    for (Bytes next = st; next.push_back(0), valid(next);) st = next;
    Check(st.size() > stream.size(), "the encoder dropped trailing zeros");
    st.push_back(0x01);
    s.Add(Invalid("invalid-cm-trailing-bytes", "full", "C2", ErrorCode::kChunkDecodeFailed,
                  "The cm stream of 'w' padded with " + std::to_string(st.size() - 1 - stream.size()) +
                      " zero bytes (still valid: the decoder reads exactly these after the "
                      "stored bytes) and then one byte 0x01 that the decoder never reads: "
                      "length > consumed at finish (7.7.1).",
                  with_stream(st), {"codec:cm"}));
  }
  {
    // Exactly four 0xFF bytes: code = range from init to the end (every bit decodes as 1, so
    // every index is 16, valid with 16 centres), and length 4 <= consumed: only finish's
    // code < range fails. (Overwriting the first bytes of a longer stream would not do: code
    // drops back below range after a few hundred bits.)
    const Bytes st(4, 0xFF);
    IndexModelInputs in;
    in.centres = 16;
    in.row = 12;
    Bytes out(192);
    size_t bad = 0;
    Check(DecodeIndexStream(in, st.data(), st.size(), out.data(), out.size(), &bad) ==
              IndexDecodeResult::kBadStream,
          "code-not-below-range: the stream must fail at finish");
    s.Add(Invalid("invalid-cm-code-not-below-range", "full", "C2", ErrorCode::kChunkDecodeFailed,
                  "The cm stream of 'w' is the 4 bytes FF FF FF FF: code = 0xFFFFFFFF equals "
                  "range = 0xFFFFFFFF after init and stays equal to it, every bit decodes as 1 "
                  "(every index 16, valid with 16 centres), and length 4 <= consumed, so only "
                  "finish's code < range fails (7.7.1; no encoder writes that).",
                  with_stream(st), {"codec:cm"}));
  }
  {
    Model x = base;
    x.required &= ~kFeatureContextModel;
    s.Add(Invalid("invalid-cm-without-feature-bit", "full", "C1", ErrorCode::kChunkMalformed,
                  "cm streams in a file whose preamble does not set required feature bit 2.",
                  Assemble(x), {"codec:cm"}));
  }
  {
    Model x = base;
    Check(x.stored[2][0][0] == uint8_t(StreamCodec::kStored), "'n' stored");
    x.stored[2][0][0] = uint8_t(StreamCodec::kCm);
    s.Add(Invalid("invalid-cm-lossless-tensor", "full", "C1", ErrorCode::kChunkMalformed,
                  "The stream of the lossless I64 tensor 'n' is marked cm (3): cm codes "
                  "quantized tensors only.",
                  Assemble(x), {"codec:cm"}));
  }
  {
    Model x = base;
    x.edit = [](Archive& a) { a.tensors[1].quantization->codebook.resize(3); };
    s.Add(Invalid("invalid-cm-index-beyond-codebook", "full", "C6", ErrorCode::kCodebookIndex,
                  "'c' (3-bit indices) has its codebook cut from 4 centres to 3 (still 2 value "
                  "bits): its cm stream's first index decodes to 4 > K (7.7.2), element 0.",
                  Assemble(x), {"codec:cm"}));
  }
  {
    // C6 before finish (spec 7.7.2, 7.7.3): 'col' [60, 1] written with 16 centres (5-bit
    // indices), element 37 index 16, then the codebook cut to 15 (still 4 value bits), and the
    // stream given a byte after those the decoder reads. With rows of one element there is no
    // left neighbour, and in a keyframe without moments no parent or aux indices, so K enters
    // the contexts only through B: decoding with 16 centres is exactly decoding with 15
    // centres without C6.
    Ckpt c = Single({MakeT("col", DType::kF32, {60, 1}, 4801)});
    Bytes ci = WeightIndices(60, 0, 15, 4821);
    ci[37] = 16;
    QuantizeWith(c, "col", QuantKind::kDirect, 5, 16, 4811, nullptr, 1.0f, ci);
    Model x = FromFile(Encode(c, IndexOpt(StreamCodec::kCm)).bytes);
    Check(x.stored[0].size() == 1 && x.stored[0][0][0] == uint8_t(StreamCodec::kCm),
          "c6-before-finish: one cm chunk");
    Bytes st(x.stored[0][0].begin() + kStreamEntryBytes, x.stored[0][0].end());
    Bytes out(60);
    size_t bad = 0;
    auto decode = [&](uint32_t centres, const Bytes& b) {
      IndexModelInputs in;
      in.centres = centres;
      in.row = 1;
      return DecodeIndexStream(in, b.data(), b.size(), out.data(), out.size(), &bad);
    };
    Check(decode(16, st) == IndexDecodeResult::kOk && out == ci, "c6-before-finish: decodes");
    // Zeros up to what the decoder reads keep it valid; then one byte it never reads.
    for (Bytes next = st; next.push_back(0), decode(16, next) == IndexDecodeResult::kOk &&
                                             out == ci;)
      st = next;
    st.push_back(0x01);
    Check(decode(16, st) == IndexDecodeResult::kBadStream,
          "c6-before-finish: without C6 the stream must fail finish");
    Check(out == ci, "c6-before-finish: without C6 the indices are the written ones");
    Check(decode(15, st) == IndexDecodeResult::kIndexTooLarge && bad == 37,
          "c6-before-finish: with 15 centres element 37 must fail C6");
    SetStream(x.stored[0][0], st);
    x.edit = [](Archive& a) { a.tensors[0].quantization->codebook.resize(15); };
    s.Add(Invalid("invalid-cm-c6-before-finish", "full", "C6", ErrorCode::kCodebookIndex,
                  "'col' (F32 [60, 1], 5-bit indices) has 15 centres (K not a power of 2; B = 4 "
                  "value bits); its cm stream was written for 16 centres with index 16 at "
                  "element 37, then extended with the zero bytes that the decoder reads after "
                  "the written ones and one byte 0x01 that it never reads (" +
                      std::to_string(st.size()) + " bytes; decoded to its end, the stream "
                      "consumes " + std::to_string(st.size() - 1) + "). Element 37 decodes to "
                      "16 > K: decoding "
                      "stops there with CodebookIndex (C6, 7.7.2), and finish is not applied "
                      "(7.7.3: C6 before C2's finish). A decoder that went on decoding, or "
                      "applied finish after stopping, would report ChunkDecodeFailed: decoded "
                      "to its end (rows of one element, no parent or aux: K enters the contexts "
                      "only through B) the stream fails finish on length > consumed, as the "
                      "generator checks.",
                  Assemble(x), {"codec:cm"}));
  }
  {
    // An error decoding the parent's indices is the chunk's error (spec 7.7.2, 7.7.3 step 3):
    // the parent's chunk 2 of 'w' (elements 100..149, 15 centres) becomes FF FF FF FF, whose
    // first index is 2^4 = 16 > 15 (CodebookIndex). The link's 'w' is Direct (no reference
    // bytes are decoded) with 16 centres (a power of 2: its own stream can never fail C6).
    Ckpt p = Single({MakeT("w", DType::kF32, {16, 12}, 4701, Role::kWeight)});
    p.step = 3000;
    QuantizeWith(p, "w", QuantKind::kDirect, 4, 15, 4711, nullptr, 1.0f,
                 WeightIndices(192, 12, 15, 4721));
    Ckpt l = Single({MakeT("w", DType::kF32, {16, 12}, 4702, Role::kWeight)});
    l.step = 3100;
    l.tensors[0].predict = false;
    QuantizeWith(l, "w", QuantKind::kDirect, 5, 16, 4712, nullptr, 1.0f,
                 FollowIndices(p.tensors[0].indices, 15, 16, 4722));
    const auto files = WriteChain({{p, IndexOpt(StreamCodec::kCm, 200)},
                                   {l, IndexOpt(StreamCodec::kCm, 200)}},
                                  ChainNames(2));
    const Bytes& link = files[1].bytes;
    Model pm = FromFile(files[0].bytes);
    Check(pm.stored[0].size() == 4, "parent-index-beyond-codebook: 4 parent chunks");
    SetStream(pm.stored[0][2], Bytes(4, 0xFF));
    const Bytes parent = Assemble(pm);
    Check(Must(ParseArchive(ByteSpan(parent)), "damaged parent").content_id == files[0].id,
          "parent-index-beyond-codebook: the parent keeps its content id");
    Check(!CmDecodeChunk(parent, "w", 2, nullptr, 0, nullptr, 0),
          "parent-index-beyond-codebook: the parent's chunk 2 must fail");
    // The link's chunks: the same elements as the parent's. Chunk 2 decodes with the intact
    // parent's indices; without parent indices (as if the failed parent gave none), its
    // stream still decodes, to other indices (so such a decoder reports ChunkChecksum).
    const auto chunks = ChunkElements(link, "w");
    Check(chunks == ChunkElements(parent, "w") && chunks.size() == 4,
          "parent-index-beyond-codebook: chunk layout");
    const auto [f, e] = chunks[2];
    const Bytes& li = l.tensors[0].indices;
    const Bytes want(li.begin() + long(f), li.begin() + long(f + e));
    Check(CmDecodeChunk(link, "w", 2, p.tensors[0].indices.data() + f, 15, nullptr, 0) == want,
          "parent-index-beyond-codebook: chunk 2 decodes with the parent's indices");
    const auto without = CmDecodeChunk(link, "w", 2, nullptr, 0, nullptr, 0);
    Check(without.has_value() && *without != want,
          "parent-index-beyond-codebook: without the parent's indices chunk 2 must decode, to "
          "other indices");
    s.Add(ChainInvalid("invalid-cm-parent-index-beyond-codebook", "C6", ErrorCode::kCodebookIndex,
                       "input.ckz is intact: a link whose 'w' (F32 [16, 12], Direct, 16 centres, "
                       "cm-coded in 200-byte chunks) has parent indices from parent-1.ckz's 'w' "
                       "(same dtype and shape, Direct, 15 centres, cm, the same chunks). In "
                       "parent-1.ckz, the cm stream of 'w''s chunk 2 (elements 100-149) is "
                       "FF FF FF FF: its first index decodes to 16 > 15 (C6). Decoding chunk 2 "
                       "of input.ckz's 'w' needs those parent indices, and the error decoding "
                       "them is this chunk's error, with its code (7.7.2, 7.7.3 step 3): "
                       "CodebookIndex. input.ckz's own stream cannot give it (16 centres, a "
                       "power of 2); a decoder that went on without parent indices decodes "
                       "chunk 2's stream without error but to other indices (checked by the "
                       "generator), and would report ChunkChecksum. The parent's values are never "
                       "needed ('w' is Direct), so only the parent-indices path finds the fault.",
                       link, parent, {"codec:cm", "cm:parent"}));
  }
}

// ------------------------------------------------------------------------------------------
// Full profile: coded headers (0.6, spec 4.1, rule H8).

void CodedHeader(Suite& s) {
  Ckpt k = ChainBase(6001);
  EncodeOptions o = Opt(StreamCodec::kZstd, true, 256);
  o.code_header = true;
  const Encoded e = Encode(k, o);
  const Model base = FromFile(e.bytes);
  Check(base.required & kFeatureCodedHeader, "full-coded-header: the writer must code it");
  s.Add(Valid("full-coded-header", "full",
              "A keyframe whose header is stored as one zstd frame (required feature bit 5, "
              "spec 4.1): the frame declares its content size and decodes to the FlatBuffers "
              "buffer; header_crc32c covers the coded bytes.",
              k, e.bytes, {"header:coded"}));
  // An invalid case: `base` with its header region made by `coded` from the FlatBuffers buffer
  // (null: the plain buffer), bit 5 as `bit5` says.
  auto invalid = [&](const std::string& name, const std::string& profile, const std::string& rule,
                     ErrorCode error, const std::string& description,
                     std::function<Bytes(const Bytes&)> coded, bool bit5 = true) {
    Model m = base;
    m.code_header = std::move(coded);
    if (!bit5) m.required &= ~kFeatureCodedHeader;
    s.Add(Invalid(name, profile, rule, error, description, Assemble(m), {"header:coded"}));
  };
  invalid("invalid-coded-header-plain", "full", "H8", ErrorCode::kHeaderMalformed,
          "Required feature bit 5 is set but the header region holds the plain FlatBuffers "
          "buffer, not a zstd frame (4.1).",
          nullptr);
  invalid("invalid-coded-header-bit-clear", "core", "H2", ErrorCode::kHeaderMalformed,
          "The header is a zstd frame but required feature bit 5 is clear: the reader takes the "
          "bytes as a FlatBuffers buffer, whose bytes 4..7 are not CKZH.",
          WriterHeaderFrame, false);
  invalid("invalid-coded-header-no-content-size", "full", "H8", ErrorCode::kHeaderMalformed,
          "The header's zstd frame does not declare its content size (4.1 requires it, so that "
          "the decoded size is checked before anything is allocated).",
          [](const Bytes& h) { return Zstd(h.data(), h.size(), false, false, 19); });
  invalid("invalid-coded-header-trailing-byte", "full", "H8", ErrorCode::kHeaderMalformed,
          "One zero byte after the header's zstd frame: the header region must be exactly one "
          "frame (4.1).",
          [&](const Bytes& h) {
            Bytes f = WriterHeaderFrame(h);
            f.push_back(0);
            return f;
          });
  invalid("invalid-coded-header-truncated", "full", "H8", ErrorCode::kHeaderMalformed,
          "The header's zstd frame without its last two bytes (header_length and header_crc32c "
          "match the cut bytes): it does not decode (4.1).",
          [&](const Bytes& h) {
            Bytes f = WriterHeaderFrame(h);
            f.resize(f.size() - 2);
            return f;
          });
  // Frame header only: single segment, an 8-byte Frame_Content_Size of 2^26 + 1, then one
  // empty raw last block. The declared size fails before anything is decoded.
  invalid("invalid-coded-header-too-large", "full", "H8", ErrorCode::kHeaderTooLarge,
          "The header's zstd frame declares a content size of 2^26 + 1 bytes, above the header "
          "limit (4.1, section 13); a reader refuses it before allocating.",
          [](const Bytes&) {
            Bytes f = {0x28, 0xB5, 0x2F, 0xFD, 0xE0};
            for (int i = 0; i < 8; ++i) f.push_back(uint8_t(((uint64_t{1} << 26) + 1) >> (8 * i)));
            f.insert(f.end(), {0x01, 0x00, 0x00});
            return f;
          });
  invalid("invalid-coded-header-not-ckzh", "full", "H2", ErrorCode::kHeaderMalformed,
          "The header's zstd frame decodes, but to a buffer whose bytes 4..7 are not CKZH: H2 "
          "applies to the decoded bytes.",
          [&](const Bytes& h) {
            Bytes b = h;
            b[4] = 'X';  // the file identifier
            return WriterHeaderFrame(b);
          });
}

// ------------------------------------------------------------------------------------------
// Full profile: cmf-coded float values (spec 7.8).

// (child, prediction) binary32 pairs that reach every part of the cmf model: every near class
// 0..24 (both signs of the difference, across zero and power-of-two boundaries), escapes with
// every exponent step length and sign flips, NaN payloads, infinities, subnormals, and keys at
// both ends of the key range (escapes: the reference encoder never wraps a near class).
std::pair<T, T> CmfPair(const std::string& name, std::vector<uint64_t> shape, uint64_t seed) {
  const uint64_t n = Elements(shape);
  std::vector<uint64_t> xs, ps;
  const uint32_t base[] = {0x3D4CCCCD, 0xBD4CCCCD, 0x3F800000, 0x00000000, 0x80000000,
                           0x00000003, 0x7F7FFFFF, 0xC2F6E979};
  for (uint32_t k = 0; k <= 24; ++k)  // near class k, both directions
    for (int neg = 0; neg < 2; ++neg) {
      const uint32_t p = base[(k + uint32_t(neg)) % 8];
      const uint32_t a = k == 0 ? 0 : (1u << (k - 1)) | (uint32_t(k * 2654435761u) & ((1u << (k - 1)) - 1));
      ps.push_back(p);
      xs.push_back(FromOrderedKey(neg ? OrderedKey(p) - a : OrderedKey(p) + a));
    }
  const std::vector<std::pair<uint32_t, uint32_t>> specials = {
      {0x7FC00000, 0x3F800000}, {0xFFC12345, 0xBF800000}, {0x7F800001, 0x00000000},
      {0x7F800000, 0x7F7FFFFF}, {0xFF800000, 0x3F000000}, {0x00000001, 0x80000000},
      {0x807FFFFF, 0x00800000}, {0x3F800000, 0xBF800000}, {0x00800000, 0x7F000000},
      {0x7F000000, 0x00800000}, {0xFFFFFFFF, 0x00000000}, {0x00000000, 0xFFFFFFFF},
      {0x7FFFFFFF, 0xFFFFFFFF}, {0xFFFFFFFF, 0x7FFFFFFF}, {0x3F800001, 0x3F800001}};
  for (const auto& [x, p] : specials) {
    xs.push_back(x);
    ps.push_back(p);
  }
  Rng r(seed);
  for (int len = 1; len <= 8; ++len)  // escapes: exponent steps of every bit length, both ways
    for (int down = 0; down < 2; ++down) {
      const uint32_t step = (1u << (len - 1)) | uint32_t(r.Next() & ((1u << (len - 1)) - 1));
      const uint32_t ep = down ? std::min<uint32_t>(254, 1 + step) : std::max<int>(0, 254 - int(step));
      const uint32_t ex = down ? ep - std::min(step, ep) : std::min<uint32_t>(255, ep + step);
      ps.push_back((ep << 23) | uint32_t(r.Next() & 0x7FFFFF) | uint32_t(r.Next() & 1) << 31);
      xs.push_back((ex << 23) | uint32_t(r.Next() & 0x7FFFFF) | uint32_t(r.Next() & 1) << 31);
    }
  while (xs.size() < n) {  // a training step: small moves, some sign flips
    const uint32_t p = uint32_t(r.Next());
    const uint32_t pe = (p & 0x807FFFFF) | (uint32_t(100 + r.Next() % 30) << 23);
    const uint64_t kind = r.Next() % 8;
    uint32_t x = pe;
    if (kind < 5) x = FromOrderedKey(OrderedKey(pe) + uint32_t(r.Next() % (1u << (4 + 3 * kind))) - (1u << (3 + 3 * kind)));
    if (kind == 5) x = pe ^ 0x80000000u;
    if (kind == 6) x = uint32_t(r.Next());
    ps.push_back(pe);
    xs.push_back(x);
  }
  Check(xs.size() == n, "CmfPair: " + std::to_string(xs.size()) + " pairs for " + std::to_string(n) + " elements");
  return {FromElems(name, DType::kF32, shape, xs), FromElems(name, DType::kF32, shape, ps)};
}

// The cmf size classes (0..25) the reference encoder uses for `x` against `p` (spec 7.8.3).
std::set<uint32_t> CmfClasses(const Bytes& x, const Bytes& p) {
  std::set<uint32_t> out;
  for (size_t i = 0; i + 4 <= x.size(); i += 4) {
    const int64_t d = int64_t(OrderedKey(LoadLE32(x.data() + i))) - int64_t(OrderedKey(LoadLE32(p.data() + i)));
    uint64_t a = uint64_t(d < 0 ? -d : d);
    uint32_t k = 0;
    while (a) ++k, a >>= 1;
    out.insert(k > 24 ? 25 : k);
  }
  return out;
}

EncodeOptions CmfOpt(uint64_t chunk, Predictor predictor = Predictor::kSubRef) {
  return Opt(StreamCodec::kCmFloat, false, chunk, predictor);
}

// Element 0 of a cmf stream decodes the same decisions whatever its prediction (all states are
// fresh), so streams for hand-made cases are found by decoding random bytes against a few
// predictions. Returns the decoded bits of element 0 against `prediction`, or nullopt when
// that fails.
std::optional<uint32_t> CmfFirst(const Bytes& stream, uint32_t prediction) {
  Bytes pred(4), out(4);
  StoreLE32(pred.data(), prediction);
  size_t bad = 0;
  if (DecodeFloatStream(stream.data(), stream.size(), pred.data(), out.data(), 1, &bad) !=
      FloatDecodeResult::kOk)
    return std::nullopt;
  return LoadLE32(out.data());
}

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

// A stream of random bytes (4..7 of them) for which `accept` holds.
Bytes CmfSearch(uint64_t seed, const std::function<bool(const Bytes&)>& accept,
                const std::string& what) {
  Rng r(seed);
  for (int tries = 0; tries < 1000000; ++tries) {
    Bytes st(4 + r.Next() % 4);
    for (uint8_t& b : st) b = uint8_t(r.Next());
    if (accept(st)) return st;
  }
  Die("no stream found: " + what);
}

// Hand-made cmf streams the reference encoder never writes but every decoder must read: a near
// class whose key sum wraps around 2^32, and a tensor mixing cmf and stored chunks.
void CmfHandMade(Suite& s) {
  const uint32_t top = 0x7FFFFFFF;  // a NaN pattern: key 0xFFFFFFFF, the largest key
  const Bytes wrap = CmfSearch(5031, [&](const Bytes& st) {
    const auto mid = CmfFirst(st, 0x3F800000), hi = CmfFirst(st, top);
    if (!mid || !hi) return false;
    const int64_t d = int64_t(OrderedKey(*mid)) - int64_t(OrderedKey(0x3F800000));
    return d > 0 && d < (int64_t{1} << 24) && OrderedKey(*hi) == uint32_t(0xFFFFFFFFu + uint32_t(d));
  }, "a wrapping near class");
  const uint32_t wrapped = *CmfFirst(wrap, top);
  Ckpt parent = Single({FromElems("w", DType::kF32, {1}, {top}),
                        MakeT("m", DType::kF32, {16}, 5032)});
  Ckpt child = Single({FromElems("w", DType::kF32, {1}, {wrapped}), Next(parent, 5033).tensors[1]});
  const Encoded pe = Encode(parent, Opt(StreamCodec::kStored, false));
  const Encoded ce = Encode(child, CmfOpt(32), LinkTo(pe, parent, "parent-1.ckz", 1), &parent);
  Model m = FromFile(ce.bytes);
  Check(m.stored[0].size() == 1 && m.stored[1].size() == 2, "cmf hand-made: chunk layout");
  SetStream(m.stored[0][0], wrap);  // same decoded value, so the same CRC-32C
  // Chunk 1 of 'm' (elements 8..15) as a stored stream of SubRef residuals (7.4).
  Bytes z(32);
  ForwardTransform(Predictor::kSubRef, false, 4, child.tensors[1].bytes.data() + 32,
                   parent.tensors[1].bytes.data() + 32, 32, z.data());
  Bytes& c1 = m.stored[1][1];
  c1.assign(kStreamEntryBytes, 0);
  c1[0] = uint8_t(StreamCodec::kStored);
  SetStream(c1, z);
  Case c = Valid("full-cmf-hand-made", "full",
                 "A link whose cmf streams were made by hand (spec 7.8). 'w' is one element "
                 "predicted by 0x7FFFFFFF (key 0xFFFFFFFF): its stream codes a near class with "
                 "a positive difference, so key(p) + a wraps around 2^32 (to " +
                     Hex32(wrapped) + "). 'm' has two chunks: chunk 0 is cmf, chunk 1 a "
                 "stored stream of SubRef residuals (7.4): codecs are chosen per chunk.",
                 child, Assemble(m), {"codec:cmf", "cmf:wrap", "cmf:mixed-chunks"});
  c.files.push_back({"parent-1.ckz", pe.bytes});
  s.Add(c);
}

void CmfValid(Suite& s) {
  {
    auto [x, p] = CmfPair("w", {12, 12}, 5001);
    Check(CmfClasses(x.bytes, p.bytes).size() == 26, "full-cmf-link: every size class");
    T u = MakeT("u", DType::kF32, {9}, 5004);
    u.predict = false;
    Ckpt parent = Single({p, MakeT("n", DType::kI64, {3}, 5002), MakeT("u", DType::kF32, {9}, 5005)});
    Ckpt child = Single({x, MakeT("n", DType::kI64, {3}, 5003), u});
    s.Add(ChainCase("full-cmf-link",
                    "A lossless link whose F32 tensor 'w' [12, 12] is cmf-coded (spec 7.8) "
                    "against its parent's 'w' (predictor SubRef; 200-byte chunks, so chunks "
                    "start mid-row and each starts with fresh states). The pairs reach every size "
                    "class 0..24 in both directions, escapes with exponent steps of every length "
                    "both ways, sign flips, NaN payloads, infinities, subnormals, +-0 and keys "
                    "at both ends of the key range. 'u' is cmf-coded without a prediction "
                    "(predictor None in a link: every prediction is +0.0, no parent tensor is "
                    "read). The I64 tensor 'n' is stored (cmf is for F32 only).",
                    {{parent, Opt(StreamCodec::kStored, false)}, {child, CmfOpt(200)}},
                    {"codec:cmf", "cmf:every-class", "cmf:escape", "cmf:no-prediction"}));
  }
  {
    // Predictor None: every prediction is +0.0, so nearly everything is an escape.
    auto [x, p] = CmfPair("w", {100}, 5011);
    Ckpt k = Single({x, MakeT("v", DType::kF32, {7}, 5012)});
    s.Add(Valid("full-cmf-keyframe", "full",
                "A keyframe whose F32 tensors are cmf-coded with predictor None (spec 7.8): "
                "every prediction is +0.0, so small magnitudes are near classes and the rest "
                "escapes; 'w' holds the same kinds of values as full-cmf-link.",
                k, Encode(k, CmfOpt(1u << 20, Predictor::kNone)).bytes,
                {"codec:cmf", "cmf:no-prediction", "cmf:escape"}));
  }
  {
    // Two links deep, XorRef in the middle (it means the same as SubRef for cmf), and a
    // keyframe with byte planes: predictions come from the decoded parent, whatever its coding.
    Ckpt p = ChainBase(5020);
    const Ckpt l1 = Next(p, 5021), l2 = Next(l1, 5022);
    s.Add(ChainCase("full-cmf-chain-depth2",
                    "input.ckz -> parent-1.ckz -> parent-2.ckz (keyframe: zstd, byte planes). "
                    "Both links cmf-code their F32 tensors (parent-1 with predictor XorRef, "
                    "input with SubRef: for cmf both mean 'the reference is the prediction'); "
                    "the F16 and I64 tensors are stored. 64-byte chunks.",
                    {{p, Opt(StreamCodec::kZstd, true, 64)},
                     {l1, CmfOpt(64, Predictor::kXorRef)},
                     {l2, CmfOpt(64)}},
                    {"codec:cmf", "chain:depth2"}));
  }
  CmfHandMade(s);
}

void CmfInvalid(Suite& s) {
  auto [x, p] = CmfPair("w", {12, 12}, 5101);
  StoreLE32(p.bytes.data(), 3);  // element 0: a subnormal prediction, unchanged
  StoreLE32(x.bytes.data(), 3);
  // 'z': element 0 predicted by the largest finite value (biased exponent 254).
  Ckpt parent = Single({p, MakeT("h", DType::kF16, {8}, 5102),
                        FromElems("z", DType::kF32, {4}, {0x7F7FFFFF, 1, 2, 3})});
  Ckpt child = Single({x, MakeT("h", DType::kF16, {8}, 5103),
                       FromElems("z", DType::kF32, {4}, {0x7F7FFFFF, 1, 2, 4})});
  const Encoded pe = Encode(parent, Opt(StreamCodec::kStored, false));
  const Encoded ce = Encode(child, CmfOpt(1u << 20), LinkTo(pe, parent, "parent-1.ckz", 1), &parent);
  const Model base = FromFile(ce.bytes);
  const Bytes& chunk = base.stored[0][0];
  Check(chunk[0] == uint8_t(StreamCodec::kCmFloat), "cmf stream expected");
  Check(base.required & kFeatureFloatModel, "feature bit 4 expected");
  const Bytes stream(chunk.begin() + kStreamEntryBytes, chunk.end());
  auto with_stream = [&](const Bytes& st) {
    Model m = base;
    SetStream(m.stored[0][0], st);
    return Assemble(m);
  };
  auto decodes = [&](const Bytes& st, size_t* bad) {
    Bytes out(x.bytes.size());
    return DecodeFloatStream(st.data(), st.size(), p.bytes.data(), out.data(), out.size() / 4, bad);
  };
  {
    Model m = base;
    m.required &= ~kFeatureFloatModel;
    s.Add(ChainInvalid("invalid-cmf-without-feature-bit", "C1", ErrorCode::kChunkMalformed,
                       "full-cmf-link's kind of file with required feature bit 4 cleared: codec 4 "
                       "(cmf) is allowed only with it (7.1).",
                       Assemble(m), pe.bytes, {"codec:cmf"}));
  }
  {
    Model m = base;
    m.stored[1][0][0] = uint8_t(StreamCodec::kCmFloat);  // 'h' is F16, stored
    s.Add(ChainInvalid("invalid-cmf-in-f16-tensor", "C1", ErrorCode::kChunkMalformed,
                       "The stored stream of the F16 tensor 'h' relabelled as codec 4 (cmf), which "
                       "only F32 tensors may use (7.1).",
                       Assemble(m), pe.bytes, {"codec:cmf"}));
  }
  {
    Model m = base;
    m.edit = [](Archive& a) { a.tensors[0].byte_planes = true; };
    s.Add(ChainInvalid("invalid-cmf-with-byte-planes", "C1", ErrorCode::kChunkMalformed,
                       "Tensor 'w' (one cmf stream) marked byte_planes = true: its directory "
                       "would need 4 entries, and codec 4 is not allowed in a tensor with byte "
                       "planes (7.1).",
                       Assemble(m), pe.bytes, {"codec:cmf"}));
  }
  {
    const Bytes st(8, 0xFF);
    size_t bad = 9;
    Check(decodes(st, &bad) == FloatDecodeResult::kBadSymbol && bad == 0,
          "invalid-cmf-size-class: element 0 must fail");
    s.Add(ChainInvalid("invalid-cmf-size-class", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'w' replaced by eight 0xFF bytes: code >= range, so every "
                       "decision is 1 and element 0's size class is 31 (> 25, 7.8.3).",
                       with_stream(st), pe.bytes, {"codec:cmf"}));
  }
  {
    // An escape whose exponent step goes below 0: with fresh states element 0's decisions do
    // not depend on its prediction; a stream that decodes element 0 against exponent 128 to
    // exponent <= 125 (an escape: near classes reach 126 at most) moves it down by >= 3, and
    // 'w''s element 0 is predicted by a value with biased exponent 0 or 1.
    const uint32_t ep = (LoadLE32(p.bytes.data()) >> 23) & 0xFF;
    Check(ep <= 2, "element 0 of the parent's 'w' must have a tiny exponent");
    Rng r(5111);
    Bytes found;
    for (int tries = 0; tries < 100000 && found.empty(); ++tries) {
      Bytes st(8);
      for (uint8_t& b : st) b = uint8_t(r.Next());
      const Bytes two = {0, 0, 0, 0x40};
      Bytes out(4);
      size_t bad = 0;
      if (DecodeFloatStream(st.data(), st.size(), two.data(), out.data(), 1, &bad) !=
          FloatDecodeResult::kOk)
        continue;
      if (((LoadLE32(out.data()) >> 23) & 0xFF) > 125) continue;
      size_t bad_all = 9;
      if (decodes(st, &bad_all) == FloatDecodeResult::kBadSymbol && bad_all == 0) found = st;
    }
    Check(!found.empty(), "invalid-cmf-exponent-below-0: no stream found");
    s.Add(ChainInvalid("invalid-cmf-exponent-below-0", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'w' replaced by 8 bytes whose element 0 is an escape "
                       "with an exponent step below the prediction's biased exponent (" +
                           std::to_string(ep) + "): e < 0 (7.8.3).",
                       with_stream(found), pe.bytes, {"codec:cmf"}));
  }
  {
    // Above 255: element 0 of 'z' is an escape stepping up by >= 3 from exponent 254 (against
    // exponent 128 it decodes to >= 131, beyond the near classes' reach of 130).
    const Bytes st = CmfSearch(5121, [&](const Bytes& b) {
      const auto mid = CmfFirst(b, 0x40000000);
      return mid && ((*mid >> 23) & 0xFF) >= 131 && !CmfFirst(b, 0x7F7FFFFF);
    }, "an escape above exponent 255");
    Model m = base;
    SetStream(m.stored[2][0], st);
    s.Add(ChainInvalid("invalid-cmf-exponent-above-255", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'z' replaced by " + std::to_string(st.size()) +
                           " bytes whose element 0 is an escape stepping up by at least 3 from "
                           "its prediction's biased exponent 254: e > 255 (7.8.3).",
                       Assemble(m), pe.bytes, {"codec:cmf"}));
  }
  {
    // Size classes 26..30 (not only 31): element 0's five tree decisions read fresh states.
    const Bytes st = CmfSearch(5131, [&](const Bytes& b) {
      RangeDecoder dec(b.data(), b.size());
      BitModel fresh[5];
      uint32_t cls = 0;
      for (BitModel& state : fresh) cls = 2 * cls + uint32_t(dec.Decode(state));
      size_t bad = 9;
      return cls >= 26 && cls <= 30 && decodes(b, &bad) == FloatDecodeResult::kBadSymbol &&
             bad == 0;
    }, "a size class in 26..30");
    s.Add(ChainInvalid("invalid-cmf-size-class-26-to-30", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'w' replaced by " + std::to_string(st.size()) +
                           " bytes whose element 0 has a size class in 26..30 (the 5-bit tree "
                           "can give 26..31; all are invalid, 7.8.3).",
                       with_stream(st), pe.bytes, {"codec:cmf"}));
  }
  {
    Bytes st = stream;
    size_t bad = 0;
    auto valid = [&](const Bytes& b) {
      Bytes out(x.bytes.size());
      return DecodeFloatStream(b.data(), b.size(), p.bytes.data(), out.data(), out.size() / 4,
                               &bad) == FloatDecodeResult::kOk && out == x.bytes;
    };
    Check(valid(st), "cmf stream of 'w' decodes");
    for (Bytes next = st; next.push_back(0), valid(next);) st = next;
    st.push_back(0x01);
    s.Add(ChainInvalid("invalid-cmf-trailing-bytes", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'w' padded with " +
                           std::to_string(st.size() - 1 - stream.size()) +
                           " zero bytes (still valid) and then one byte 0x01 that the decoder "
                           "never reads: length > consumed at finish (7.7.1).",
                       with_stream(st), pe.bytes, {"codec:cmf"}));
  }
  {
    // A changed byte that still decodes (no invalid symbol, finish passes) to other values.
    Bytes found;
    for (size_t i = stream.size() / 2; i < stream.size() && found.empty(); ++i)
      for (uint8_t flip : {0x01, 0x10, 0x80}) {
        Bytes st = stream;
        st[i] ^= flip;
        size_t bad = 0;
        Bytes out(x.bytes.size());
        if (DecodeFloatStream(st.data(), st.size(), p.bytes.data(), out.data(), out.size() / 4,
                              &bad) == FloatDecodeResult::kOk && out != x.bytes) {
          found = st;
          break;
        }
      }
    Check(!found.empty(), "invalid-cmf-corrupted: no silent corruption found");
    s.Add(ChainInvalid("invalid-cmf-corrupted", "C5", ErrorCode::kChunkChecksum,
                       "One byte in the second half of the cmf stream of 'w' changed so that it "
                       "still decodes (valid symbols, finish passes) to other values: the chunk's "
                       "CRC-32C does not match.",
                       with_stream(found), pe.bytes, {"codec:cmf"}));
  }
}

// ------------------------------------------------------------------------------------------
// Coded prologs (format 0.5, spec 8.4).

// A PyTorch state dict ("model.pt", TorchZip) and a Trainer-like JSON file beside it.
Ckpt PrologCkpt(uint64_t seed, int64_t step) {
  Ckpt c = Single({MakeT("fc1.weight", DType::kF32, {8, 6}, seed + 1, Role::kWeight),
                   MakeT("fc1.bias", DType::kF32, {8}, seed + 2, Role::kWeight),
                   MakeT("fc2.weight", DType::kF32, {3, 8}, seed + 3, Role::kWeight),
                   MakeT("fc2.bias", DType::kF32, {3}, seed + 4, Role::kWeight),
                   MakeT("step", DType::kI64, {}, seed + 5)},
                  "model.pt");
  c.files[0].format = SourceFormat::kTorchZip;
  SrcFile state;
  state.path = "trainer_state.json";
  state.format = SourceFormat::kRaw;
  std::string json = "{\n  \"global_step\": " + std::to_string(step) + ",\n  \"log_history\": [\n";
  for (int64_t s = 10; s <= step; s += 10)
    json += "    {\"step\": " + std::to_string(s) + ", \"loss\": 2." + std::to_string(900 - s) +
            ", \"learning_rate\": 0.0003}" + (s + 10 <= step ? "," : "") + "\n";
  json += "  ]\n}\n";
  state.raw = Str(json);
  c.files.push_back(state);
  c.step = step;
  return c;
}

EncodeOptions PrologOpt(PrologCodec codec, Predictor predictor = Predictor::kNone) {
  EncodeOptions o = Opt(StreamCodec::kZstd, false, 1u << 20, predictor);
  o.prolog_codec = codec;
  return o;
}

// A keyframe with Zstd prologs and a link with ZstdParent ones (files: input.ckz, the link;
// parent-1.ckz).
struct PrologChain {
  Ckpt k, l;
  std::vector<Encoded> files;
};
PrologChain MakePrologChain() {
  PrologChain pc;
  pc.k = PrologCkpt(900, 100);
  pc.l = Next(pc.k, 901);
  pc.l.files[1].raw = PrologCkpt(900, 200).files[1].raw;
  pc.files = WriteChain({{pc.k, PrologOpt(PrologCodec::kZstd)},
                         {pc.l, PrologOpt(PrologCodec::kZstdParent, Predictor::kXorRef)}},
                        ChainNames(2));
  return pc;
}

// `frame` with a 1-byte Dictionary_ID inserted (RFC 8878 3.1.1.1.1: Dictionary_ID_Flag = 1).
Bytes WithDictionaryId(Bytes frame, uint8_t id) {
  const uint8_t fhd = frame[4];
  Check((fhd & 3) == 0, "WithDictionaryId: the frame already names a dictionary");
  const size_t at = 5 + ((fhd & 0x20) ? 0 : 1);  // after the Window_Descriptor, if any
  frame[4] = uint8_t(fhd | 1);
  frame.insert(frame.begin() + long(at), id);
  return frame;
}

void PrologValid(Suite& s) {
  {
    Ckpt c = PrologCkpt(880, 50);
    s.Add(Valid("core-prolog-zstd", "core",
                "Two source files whose prologs are zstd-coded (format 0.5, spec 8.4, "
                "required feature bit 3): a torch.save state dict (its zip records and pickle; "
                "the CRC-32 bytes under its patches are stored as zeros) and a raw JSON file. "
                "Each prolog is one zstd frame that decodes, without a dictionary, to "
                "prolog_raw_length bytes with CRC-32C prolog_crc32c.",
                c, Encode(c, PrologOpt(PrologCodec::kZstd)).bytes,
                {"source:splits", "source:crc32-patches"}));
  }
  {
    // Depth 2: the last link lists its files in the other order and renames the state dict,
    // so its prolog_parent_file values are 1 and 0 and one of them matches by position only.
    Ckpt k = PrologCkpt(910, 100), l1 = Next(k, 911), l2 = Next(l1, 912);
    l1.files[1].raw = PrologCkpt(910, 200).files[1].raw;
    l2.files[1].raw = PrologCkpt(910, 300).files[1].raw;
    l2.files[0].path = "model-300.pt";
    std::swap(l2.files[0], l2.files[1]);
    s.Add(ChainCase("full-prolog-zstd-parent-chain",
                    "A keyframe with zstd-coded prologs and two links whose prologs are "
                    "ZstdParent-coded (spec 8.4): each frame's history (a raw-content dictionary) "
                    "is the decoded prolog of the parent's files[prolog_parent_file]. The depth-2 "
                    "link lists its files in the other order (prolog_parent_file 1 for its first "
                    "file, 0 for its second) and names its state dict model-300.pt. Tensors are "
                    "XorRef-predicted, zstd streams.",
                    {{k, PrologOpt(PrologCodec::kZstd)},
                     {l1, PrologOpt(PrologCodec::kZstdParent, Predictor::kXorRef)},
                     {l2, PrologOpt(PrologCodec::kZstdParent, Predictor::kXorRef)}},
                    {"source:crc32-patches"}));
  }
}

void PrologInvalid(Suite& s) {
  const PrologChain pc = MakePrologChain();
  const Bytes& keyframe = pc.files[0].bytes;
  const Bytes& link = pc.files[1].bytes;
  auto key_case = [&](const std::string& name, const std::string& rule, ErrorCode error,
                      const std::string& description, const std::function<void(Model&)>& edit,
                      const std::string& profile = "core") {
    Model m = FromFile(keyframe);
    edit(m);
    s.Add(Invalid(name, profile, rule, error, description, Assemble(m)));
  };
  auto link_case = [&](const std::string& name, const std::string& rule, ErrorCode error,
                       const std::string& description, const std::function<void(Model&)>& edit) {
    Model m = FromFile(link);
    edit(m);
    s.Add(ChainInvalid(name, rule, error, description, Assemble(m), keyframe));
  };
  key_case("invalid-prolog-checksum", "C7", ErrorCode::kPrologDecodeFailed,
           "files[0]'s zstd prolog decodes, but prolog_crc32c is off by one bit.",
           [](Model& m) { m.h.files[0].prolog_crc32c ^= 1; });
  key_case("invalid-prolog-raw-length", "C7", ErrorCode::kPrologDecodeFailed,
           "files[0].prolog_raw_length is one more than the frame's content size (splits and "
           "patches still fit).",
           [](Model& m) { m.h.files[0].prolog_length += 1; });
  key_case("invalid-prolog-not-zstd", "C7", ErrorCode::kPrologDecodeFailed,
           "files[1]'s coded prolog is not a zstd frame.",
           [](Model& m) { m.h.files[1].prolog_coded = Str("not a zstd frame"); });
  key_case("invalid-prolog-truncated", "C7", ErrorCode::kPrologDecodeFailed,
           "files[0]'s zstd frame lacks its last byte.",
           [](Model& m) { m.h.files[0].prolog_coded.pop_back(); });
  key_case("invalid-prolog-trailing-byte", "C7", ErrorCode::kPrologDecodeFailed,
           "files[0]'s zstd frame is followed by one more byte.",
           [](Model& m) { m.h.files[0].prolog_coded.push_back(0); });
  key_case("invalid-prolog-dictionary-id", "C7", ErrorCode::kPrologDecodeFailed,
           "files[1]'s zstd frame names dictionary 7 (a coded prolog never uses a dictionary "
           "id; its only history is the parent's prolog, for ZstdParent).",
           [](Model& m) { m.h.files[1].prolog_coded = WithDictionaryId(m.h.files[1].prolog_coded, 7); });
  key_case("invalid-prolog-zstd-window", "C7", ErrorCode::kPrologDecodeFailed,
           "files[0]'s prolog re-coded as a zstd frame without a content size and with a 1 KiB "
           "window: libzstd decodes it, but spec 8.4 (as 7.2) requires Window_Size >= "
           "prolog_raw_length.",
           [](Model& m) {
             SourceFileInfo& f = m.h.files[0];
             Bytes prolog(f.prolog_length);
             Check(ZSTD_decompress(prolog.data(), prolog.size(), f.prolog_coded.data(),
                                   f.prolog_coded.size()) == prolog.size(),
                   "prolog-zstd-window: the prolog does not decode");
             Check(prolog.size() > 1024, "prolog-zstd-window: prolog too short");
             ZSTD_CCtx* c = ZSTD_createCCtx();
             ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 19);
             ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
             ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 10);
             Bytes frame(ZSTD_compressBound(prolog.size()));
             const size_t n =
                 ZSTD_compress2(c, frame.data(), frame.size(), prolog.data(), prolog.size());
             ZSTD_freeCCtx(c);
             Check(!ZSTD_isError(n), "prolog-zstd-window: zstd failed");
             frame.resize(n);
             f.prolog_coded = frame;
           });
  key_case("invalid-prolog-codec", "F9", ErrorCode::kFieldOutOfRange,
           "files[0].prolog_codec is 3 (only 0..2 exist).",
           [](Model& m) { m.h.files[0].prolog_codec = static_cast<PrologCodec>(3); });
  key_case("invalid-prolog-raw-length-zero", "F9", ErrorCode::kFieldOutOfRange,
           "files[1] has a zstd-coded prolog with prolog_raw_length 0.",
           [](Model& m) { m.h.files[1].prolog_length = 0; });
  key_case("invalid-prolog-raw-length-too-large", "F9", ErrorCode::kFieldOutOfRange,
           "files[1].prolog_raw_length is 2^30 + 1 (at most 2^30).",
           [](Model& m) { m.h.files[1].prolog_length = (uint64_t{1} << 30) + 1; });
  key_case("invalid-prolog-stored-with-crc", "F9", ErrorCode::kFieldOutOfRange,
           "files[1]'s prolog is stored but the file also carries a prolog_crc32c.",
           [](Model& m) {
             SourceFileInfo& f = m.h.files[1];
             f.prolog = PrologCkpt(900, 100).files[1].raw;
             f.prolog_codec = PrologCodec::kStored;
             f.prolog_length = 0;
             f.prolog_crc32c = 5;
           });
  key_case("invalid-prolog-zstd-with-parent-file", "F9", ErrorCode::kFieldOutOfRange,
           "files[1]'s prolog is Zstd-coded but names prolog_parent_file 1.",
           [](Model& m) { m.h.files[1].prolog_parent_file = 1; });
  key_case("invalid-prolog-parent-in-keyframe", "F10", ErrorCode::kBadLink,
           "A keyframe's files[0].prolog_codec is ZstdParent: it has no parent.",
           [](Model& m) { m.h.files[0].prolog_codec = PrologCodec::kZstdParent; }, "full");
  key_case("invalid-prolog-feature-bit-clear", "F11", ErrorCode::kFieldOutOfRange,
           "The prologs are zstd-coded but required feature bit 3 is clear.",
           [](Model& m) { m.required &= ~kFeatureCodedProlog; });
  {
    Model m = FromFile(BaseFile());
    m.required |= kFeatureCodedProlog;
    s.Add(Invalid("invalid-prolog-feature-bit-set", "core", "F11", ErrorCode::kFieldOutOfRange,
                  "Required feature bit 3 (coded prologs) is set but the only prolog is stored.",
                  Assemble(m)));
  }
  link_case("invalid-prolog-parent-file-out-of-range", "R4", ErrorCode::kReferenceMismatch,
            "files[0]'s ZstdParent prolog names prolog_parent_file 2; the parent has 2 files.",
            [](Model& m) { m.h.files[0].prolog_parent_file = 2; });
  link_case("invalid-prolog-parent-window", "C7", ErrorCode::kPrologDecodeFailed,
            "files[0]'s ZstdParent frame (no content size, a 1 KiB window) decodes with libzstd, "
            "but its Window_Size is below prolog_raw_length: RFC 8878 would cut its history "
            "off after the first window of output, so spec 8.4 rejects it.",
            [&](Model& m) {
              SourceFileInfo mine = BuildSources(pc.l).infos[0];
              SourceFileInfo history = BuildSources(pc.k).infos[0];
              ClearCrc32PatchBytes(&mine);
              ClearCrc32PatchBytes(&history);
              Check(mine.prolog.size() > 1024, "prolog-parent-window: prolog too short");
              ZSTD_CCtx* c = ZSTD_createCCtx();
              ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 19);
              ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
              ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 10);
              ZSTD_CCtx_refPrefix(c, history.prolog.data(), history.prolog.size());
              Bytes frame(ZSTD_compressBound(mine.prolog.size()));
              const size_t n = ZSTD_compress2(c, frame.data(), frame.size(), mine.prolog.data(),
                                              mine.prolog.size());
              ZSTD_freeCCtx(c);
              Check(!ZSTD_isError(n), "prolog-parent-window: zstd failed");
              frame.resize(n);
              m.h.files[0].prolog_coded = frame;
            });
  link_case("invalid-prolog-parent-wrong-history", "C7", ErrorCode::kPrologDecodeFailed,
            "files[0]'s ZstdParent prolog names prolog_parent_file 1 (the parent's JSON file) "
            "instead of 0 (the state dict it was coded against): decoding with that history "
            "fails or gives bytes whose CRC-32C differs.",
            [](Model& m) { m.h.files[0].prolog_parent_file = 1; });
  {
    // Issue 6: a parent whose header is damaged is not a parent.
    const BaseChain bc = MakeBaseChain();
    Bytes parent = bc.p.bytes;
    parent[HeaderOffset(parent) + 20] ^= 0x10;
    s.Add(ChainInvalid("invalid-parent-header-checksum", "R1", ErrorCode::kParentNotFound,
                       "parent-1.ckz has the right content id but one bit of its header is "
                       "flipped, so it fails its header CRC-32C and is not a candidate parent: "
                       "no parent is found.",
                       bc.c.bytes, parent));
  }
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr,
            "usage: make_vectors <conformance folder>\n"
            "Rebuilds <folder>/cases/ and <folder>/manifest.json (deleting what was there).\n");
    return 2;
  }
  const fs::path root = argv[1];
  if (!fs::is_directory(root)) Die(root.string() + " is not a folder");
  Suite suite(root);
  CoreValid(suite);
  CoreInvalid(suite);
  FullValid(suite);
  FullInvalid(suite);
  QuantizedValid(suite);
  QuantizedInvalid(suite);
  CmValid(suite);
  CmInvalid(suite);
  CmfValid(suite);
  CmfInvalid(suite);
  CodedHeader(suite);
  PrologValid(suite);
  PrologInvalid(suite);
  suite.Finish();
  return 0;
}
