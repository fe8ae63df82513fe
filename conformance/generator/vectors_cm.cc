// cm-coded index streams (spec 7.7), full profile.
#include "vectors.h"

#include <optional>
#include <set>

#include "ckz/decoder.h"
#include "common/index_model.h"
#include "common/quantize.h"
#include "format/chunk_layout.h"

namespace ckz::vectors {
namespace {

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

}  // namespace

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

}  // namespace ckz::vectors
