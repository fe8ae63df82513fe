// Definitions for vector_builder.h.
#include "vector_builder.h"

#include <flatbuffers/flatbuffers.h>
#include <zstd.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstring>
#include <memory>

#include "ckz/checkpoint.h"
#include "ckz/safetensors.h"
#include "ckz/torch.h"
#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/index_model.h"
#include "common/quantize.h"
#include "file_surgery.h"
#include "format/chunk_layout.h"
#include "format/preamble.h"
#include "source_assembly.h"

namespace ckz::vectors {
namespace {

constexpr char kWriterName[] = "ckz conformance vectors";

}  // namespace

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

std::string Hex(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}
uint64_t Align64(uint64_t x) { return (x + 63) / 64 * 64; }
Bytes Str(const std::string& s) { return Bytes(s.begin(), s.end()); }

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

T MakeT(const std::string& name, DType dtype, std::vector<uint64_t> shape, uint64_t seed,
        Role role, int32_t owner) {
  T t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes = Values(dtype, Elements(t.shape), seed);
  t.role = role;
  t.owner = owner;
  return t;
}

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

Ckpt Single(std::vector<T> tensors, const std::string& path) {
  Ckpt c;
  c.tensors = std::move(tensors);
  SrcFile f;
  f.path = path;
  for (const T& t : c.tensors) f.tensors.push_back(t.name);
  c.files.push_back(f);
  return c;
}

Ckpt Next(const Ckpt& c, uint64_t seed) {
  Ckpt n = c;
  for (size_t i = 0; i < n.tensors.size(); ++i)
    n.tensors[i].bytes = NextStep(n.tensors[i].dtype, c.tensors[i].bytes, seed * 1000 + i);
  if (n.step) *n.step += 100;
  return n;
}

Ckpt NextLossless(const Ckpt& c, uint64_t seed) {
  Ckpt n = Next(c, seed);
  for (T& t : n.tensors) {
    t.quant.reset();
    t.levels.clear();
    t.indices.clear();
  }
  return n;
}

// 7.9.3's aux tensor of a level tensor (7.7.2's rule over the level kinds), by that rule.
const T* SpecAux(const Ckpt& c, const T& t) {
  if (!t.HasLevels() || t.owner < 0) return nullptr;
  const T& o = c.tensors[size_t(t.owner)];
  const T* owner = o.HasLevels() ? &o : nullptr;
  if (t.role == Role::kMoment1) return owner;
  if (t.role != Role::kMoment2) return nullptr;
  const T* sibling = nullptr;
  int siblings = 0;
  for (const T& u : c.tensors)
    if (u.role == Role::kMoment1 && u.owner == t.owner && u.HasLevels()) sibling = &u, ++siblings;
  return siblings == 1 ? sibling : owner;
}

// 7.9.3's parent levels: the parent's tensor of this name, dtype and shape with a level kind.
const int32_t* SpecParentLevels(const Ckpt* parent, const T& t) {
  const T* p = parent ? parent->Find(t.name) : nullptr;
  return p && p->HasLevels() && p->dtype == t.dtype && p->shape == t.shape ? p->levels.data()
                                                                            : nullptr;
}

// 7.9.3's moment aux levels (0.10): a Weight's only Moment1 (any coding), read in the parent.
const int32_t* SpecAuxLevels(const Ckpt& c, const Ckpt* parent, const T& t) {
  if (const T* aux = SpecAux(c, t)) return aux->levels.data();
  if (!t.HasLevels() || !c.moment_context || !parent || t.role != Role::kWeight) return nullptr;
  const int32_t index = int32_t(&t - c.tensors.data());
  const T* m = nullptr;
  for (const T& u : c.tensors)
    if (u.role == Role::kMoment1 && u.owner == index) {
      if (m) return nullptr;  // several
      m = &u;
    }
  return m ? SpecParentLevels(parent, *m) : nullptr;
}

QuantizationInfo LevelQuant(QuantKind kind, float step, float scale, int8_t log_unit) {
  QuantizationInfo q;
  q.kind = kind;
  q.step = step;
  q.reference_scale = scale;
  q.log_unit = log_unit;
  return q;
}

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

Bytes FollowIndices(const Bytes& like, size_t like_centres, size_t centres, uint64_t seed,
                    unsigned keep, unsigned extra) {
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

std::vector<int32_t> PlannerLevels(uint64_t n, uint64_t seed, const std::vector<int32_t>* like,
                                   unsigned zeros, uint64_t escape_one_in) {
  Rng r(seed);
  std::vector<int32_t> out(n);
  for (uint64_t i = 0; i < n; ++i) {
    if (like && (*like)[i] != 0 && r.Below(3) != 0) {
      out[i] = (*like)[i] + int32_t(r.Below(3)) - 1;
      continue;
    }
    if (r.Below(8) < zeros) continue;
    int32_t m = 1;
    while (m < 60 && r.Below(3) == 0) m += 1 + m / 2;
    if (r.Below(escape_one_in) == 0) m = int32_t(15 + r.Below(400));
    out[i] = r.Below(2) ? -m : m;
  }
  return out;
}

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

EncodeOptions Opt(StreamCodec codec, bool planes, uint64_t chunk,
                  Predictor predictor) {
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

Encoded Encode(const Ckpt& c, const EncodeOptions& options,
               const std::optional<LinkInfo>& link, const Ckpt* parent, const LstmUse& lstm) {
  auto sink = std::make_unique<MemorySink>();
  MemorySink* mem = sink.get();
  Writer w(std::move(sink), options);
  w.SetWriterName(kWriterName);
  if (c.step) w.SetStep(*c.step);
  if (link) w.SetLink(*link);
  if (lstm.model) MustOk(w.SetLstmModel(lstm.model, lstm.from_parent), "SetLstmModel");
  if (c.moment_context) w.SetMomentContext(true);
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
  const std::vector<CmTensorRole> roles = Roles(c);
  for (const T& t : c.tensors) {
    ByteSpan ref;
    if (link && parent && t.predict)
      if (const T* p = parent->Find(t.name))
        if (p->bytes.size() == t.bytes.size() && !p->bytes.empty()) ref = ByteSpan(p->bytes);
    const T* same = link && parent ? parent->Find(t.name) : nullptr;
    if (same && (same->dtype != t.dtype || same->shape != t.shape)) same = nullptr;
    const int aux = t.quant ? CmAuxTensor(roles, size_t(&t - c.tensors.data())) : -1;
    if (t.HasLevels()) {
      // The cml codec's contexts (spec 7.9.3) and the parent's step source (7.9.1).
      LevelContexts lx;
      if (same && same->HasLevels()) lx.parent = same->levels.data();
      if (aux >= 0) lx.aux = c.tensors[size_t(aux)].levels.data();
      const int moment = c.moment_context && link && parent
                             ? WeightMoment1(roles, size_t(&t - c.tensors.data()))
                             : -1;
      if (aux < 0 && moment >= 0)  // (0.10) the parent's levels of the weight's Moment1
        if (const T* pm = parent->Find(c.tensors[size_t(moment)].name))
          if (pm->HasLevels() && pm->dtype == c.tensors[size_t(moment)].dtype &&
              pm->shape == c.tensors[size_t(moment)].shape)
            lx.aux = pm->levels.data();
      ByteSpan source;
      DType source_dtype = DType::kF32;
      if (t.quant->step_source >= 0) {
        const T& u = c.tensors[size_t(t.quant->step_source)];
        source_dtype = u.dtype;
        if (const T* pu = link && parent ? parent->Find(u.name) : nullptr)
          source = ByteSpan(pu->bytes);
      }
      Bytes decoded(t.bytes.size());
      MustOk(w.AddLevelTensor(t.Spec(), *t.quant, t.levels.data(), ref, source, source_dtype,
                              MutableByteSpan(decoded), lx),
             "AddLevelTensor '" + t.name + "'");
      Check(decoded == t.bytes, "'" + t.name + "': the writer reconstructs other bytes");
      continue;
    }
    if (t.quant) {
      // The cm codec's contexts (spec 7.7.2), as a decoder derives them; other index codecs
      // ignore them.
      IndexContexts cx;
      if (same && same->quant && !same->HasLevels()) {
        cx.parent = ByteSpan(same->indices);
        cx.parent_centres = uint32_t(same->quant->codebook.size());
      }
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

size_t TablePosition(const Bytes& buffer, const void* table) {
  const auto* p = static_cast<const uint8_t*>(table);
  Check(p >= buffer.data() && p < buffer.data() + buffer.size(), "a table outside the buffer");
  return size_t(p - buffer.data());
}

size_t VtablePosition(const Bytes& buffer, const void* table) {
  const auto* t = static_cast<const flatbuffers::Table*>(table);
  return size_t(t->GetVTable() - buffer.data());
}

size_t FieldPosition(const Bytes& buffer, const void* table, uint16_t vt) {
  const auto* t = static_cast<const flatbuffers::Table*>(table);
  const uint16_t at = t->GetOptionalFieldOffset(vt);
  Check(at != 0, "FieldPosition: the field is absent");
  return TablePosition(buffer, table) + at;
}

Bytes Zstd(const uint8_t* p, size_t n, bool checksum, bool content_size, int level,
           int window_log, ByteSpan prefix) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size ? 1 : 0);
  ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
  if (prefix.size > 0) ZSTD_CCtx_refPrefix(c, prefix.data, prefix.size);
  Bytes out(ZSTD_compressBound(n));
  const size_t r = ZSTD_compress2(c, out.data(), out.size(), p, n);
  ZSTD_freeCCtx(c);
  Check(!ZSTD_isError(r), "zstd compression failed");
  out.resize(r);
  return out;
}
Bytes Zstd(const Bytes& b, bool checksum, bool content_size) {
  return Zstd(b.data(), b.size(), checksum, content_size);
}

Bytes WriterHeaderFrame(const Bytes& header) {
  return Zstd(header.data(), header.size(), false, true, 19);
}

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

std::vector<Bytes> Planes(const uint8_t* p, size_t n, size_t w) {
  std::vector<Bytes> planes(w, Bytes(n / w));
  for (size_t i = 0; i < n / w; ++i)
    for (size_t b = 0; b < w; ++b) planes[b][i] = p[i * w + b];
  return planes;
}

void SetStream(Bytes& chunk, const Bytes& stream) {
  chunk.resize(kStreamEntryBytes);
  StoreLE32(chunk.data() + 1, uint32_t(stream.size()));
  chunk.insert(chunk.end(), stream.begin(), stream.end());
}

std::vector<T> EveryDtype(uint64_t seed) {
  return {
      MakeT("f64", DType::kF64, {3, 5}, seed + 1),  MakeT("f32", DType::kF32, {4, 6}, seed + 2),
      MakeT("f16", DType::kF16, {7, 3}, seed + 3),  MakeT("bf16", DType::kBF16, {11}, seed + 4),
      MakeT("i64", DType::kI64, {5}, seed + 5),     MakeT("i32", DType::kI32, {2, 2, 2}, seed + 6),
      MakeT("i16", DType::kI16, {13}, seed + 7),    MakeT("i8", DType::kI8, {17}, seed + 8),
      MakeT("u8", DType::kU8, {19}, seed + 9),      MakeT("bool", DType::kBool, {23}, seed + 10),
  };
}

Ckpt BaseCkpt() {
  Ckpt c = Single({MakeT("a", DType::kF32, {40}, 11, Role::kWeight), MakeT("b", DType::kI64, {4}, 12)});
  c.step = 100;
  return c;
}
Bytes BaseFile(StreamCodec codec, bool planes) {
  return Encode(BaseCkpt(), Opt(codec, planes, 64)).bytes;
}

// A keyframe and a link predicted from it (XorRef, stored streams, 64-byte chunks), for the
Ckpt BareCkpt() {
  Ckpt c;
  c.tensors = {MakeT("w", DType::kF32, {3, 4}, 1401, Role::kWeight),
               MakeT("n", DType::kI64, {}, 1402)};
  return c;
}

BaseChain MakeBaseChain(Predictor predictor) {
  BaseChain b;
  b.parent = BaseCkpt();
  b.child = Next(b.parent, 5);
  b.p = Encode(b.parent, Opt(StreamCodec::kStored, false, 64));
  b.c = Encode(b.child, Opt(StreamCodec::kStored, false, 64, predictor),
               LinkTo(b.p, b.parent, "parent-1.ckz", 1), &b.parent);
  return b;
}

std::vector<Encoded> WriteChain(const std::vector<Level>& levels,
                                const std::vector<std::string>& names) {
  std::vector<Encoded> out;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (i == 0) {
      out.push_back(Encode(levels[0].ckpt, levels[0].options, std::nullopt, nullptr,
                           levels[0].lstm));
    } else {
      out.push_back(Encode(levels[i].ckpt, levels[i].options,
                           LinkTo(out[i - 1], levels[i - 1].ckpt, names[i - 1], uint32_t(i)),
                           &levels[i - 1].ckpt, levels[i].lstm));
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

Ckpt ChainBase(uint64_t seed) {
  Ckpt c = Single({MakeT("w", DType::kF32, {16, 16}, seed + 1, Role::kWeight),
                   MakeT("b", DType::kF32, {16}, seed + 2, Role::kWeight),
                   MakeT("h", DType::kF16, {8, 8}, seed + 3, Role::kWeight),
                   MakeT("n", DType::kI64, {}, seed + 4)});
  c.step = 1000;
  return c;
}

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

void Quantize(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits, size_t centres,
              uint64_t seed, const Ckpt* parent, float scale, unsigned zero_every) {
  const uint64_t n = Elements(c.tensors[c.Index(name)].shape);
  Rng r(seed + 7);
  Bytes indices(n);
  for (uint64_t i = 0; i < n; ++i)
    indices[i] = r.Next() % zero_every == 0 ? 0 : uint8_t(1 + (i * 7 + r.Next()) % centres);
  QuantizeWith(c, name, kind, bits, centres, seed, parent, scale, std::move(indices));
}

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

EncodeOptions IndexOpt(StreamCodec index_codec, uint64_t chunk) {
  EncodeOptions o = Opt(StreamCodec::kStored, false, chunk);
  o.index_codec = index_codec;
  return o;
}

void SetLevels(Ckpt& c, const std::string& name, const QuantizationInfo& q,
               std::vector<int32_t> levels, const Ckpt* parent) {
  T& t = c.tensors[c.Index(name)];
  const uint64_t n = Elements(t.shape);
  Check(q.IsLevels() && levels.size() == n, name + ": a level kind and one level per element");
  std::vector<int8_t> shifts(n);
  const uint8_t* source = nullptr;
  DType source_dtype = DType::kF32;
  if (q.step_source >= 0) {
    const T& u = c.tensors[size_t(q.step_source)];
    const T* pu = parent ? parent->Find(u.name) : nullptr;
    Check(pu && pu->bytes.size() == n * DTypeSize(u.dtype), name + ": the parent's step source");
    source = pu->bytes.data();
    source_dtype = u.dtype;
  }
  StepShifts(q, source_dtype, source, n, shifts.data());
  const uint8_t* ref = nullptr;
  if (q.NeedsReference()) {
    const T* r = parent ? parent->Find(name) : nullptr;
    Check(r && r->bytes.size() == t.bytes.size(), name + ": a residual needs the parent's tensor");
    ref = r->bytes.data();
  }
  ReconstructLevels(q, t.dtype, levels.data(), shifts.data(), n, ref, t.bytes.data());
  t.quant = q;
  t.levels = std::move(levels);
  t.indices.clear();
}

std::vector<CmTensorRole> Roles(const Ckpt& c) {
  std::vector<CmTensorRole> roles;
  for (const T& u : c.tensors) roles.push_back({u.role, u.owner, u.quant.has_value(), u.HasLevels()});
  return roles;
}

uint16_t RoundOnce(double v, int mant, int emin, int bias) {
  Check(!std::isnan(v), "RoundOnce: a NaN");
  const uint16_t sign = std::signbit(v) ? uint16_t(0x8000) : uint16_t(0);
  const uint64_t inf = ((uint64_t{1} << (15 - mant)) - 1) << mant;
  const double a = std::fabs(v);
  if (a == 0) return sign;
  if (std::isinf(a)) return uint16_t(sign | inf);
  int e = 0;
  std::frexp(a, &e);
  e -= 1;  // a in [2^e, 2^(e+1))
  const int q = std::max(e, emin) - mant;              // the quantum: one unit in the last place
  const double n = std::nearbyint(std::ldexp(a, -q));  // exact scaling; round to nearest even
  Check(std::fegetround() == FE_TONEAREST, "RoundOnce: rounding mode");
  uint64_t bits;
  if (e < emin) bits = uint64_t(n);  // subnormal (n = 2^mant is the smallest normal)
  else bits = (uint64_t(e + bias) << mant) + (uint64_t(n) - (uint64_t{1} << mant));
  return uint16_t(sign | std::min(bits, inf));
}
uint16_t RoundF16(double v) { return RoundOnce(v, 10, -14, 15); }
uint16_t RoundBF16(double v) { return RoundOnce(v, 7, -126, 127); }
double WidenF16(uint16_t h) {
  const int e = (h >> 10) & 0x1F, f = h & 0x3FF;
  Check(e != 0x1F || f == 0, "WidenF16: a NaN");
  const double m = e == 0x1F ? HUGE_VAL : e == 0 ? std::ldexp(f, -24) : std::ldexp(1024 + f, e - 25);
  return (h & 0x8000) ? -m : m;
}
double WidenBF16(uint16_t b) {
  Check((b & 0x7F80) != 0x7F80 || (b & 0x7F) == 0, "WidenBF16: a NaN");
  return double(F32FromBits(uint32_t(b) << 16));
}
float ExactF32(double v) {
  const float f = float(v);
  Check(double(f) == v, "ExactF32: not a binary32 value");
  return f;
}

}  // namespace ckz::vectors
