// Reference chains and predictors (spec 7.4, 10.2), full profile.
#include "vectors.h"

#include <functional>

#include "common/bytes.h"

namespace ckz::vectors {
namespace {

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

}  // namespace

void ReferenceChainValid(Suite& s) {
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

void ReferenceChainInvalid(Suite& s) {
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
    // Spec 10.2: every .ckz file searched is a candidate, the link itself included.
    Model self = FromFile(bc.c.bytes);
    self.h.link->parent_content_id = self.h.content_id;
    self.h.link->path_hint.clear();
    s.Add(Invalid("invalid-link-names-itself", "full", "R2", ErrorCode::kBadChain,
                  "input.ckz, alone in its folder, is a link of depth 1 whose parent_content_id "
                  "is its own content id (no path_hint). Every .ckz file a reader searches is a "
                  "candidate parent, the link itself included (10.2): it finds itself, whose "
                  "depth (1) is not the link's depth minus 1, so BadChain (a reader that left "
                  "the link out would report ParentNotFound).",
                  Assemble(self)));
  }
  {
    // Spec 10.2: a file that fails section 9 is no candidate, whatever its content_id says.
    Model p = FromFile(bc.p.bytes);
    p.h.tensors[1].name = "b\xff";
    const Bytes parent = Assemble(p);
    Check(Must(ParseArchive(ByteSpan(bc.c.bytes)), "link").link->parent_content_id ==
              p.h.content_id,
          "parent-fails-validation: the damaged parent keeps the link's parent content id");
    s.Add(ChainInvalid("invalid-parent-fails-validation", "R1", ErrorCode::kParentNotFound,
                       "parent-1.ckz holds the link's parent content id in its header, but its "
                       "tensor 'b' is named 'b' + 0xFF, not UTF-8 (rule T1). A file that fails a "
                       "rule of section 9 is not a candidate parent (10.2), so no parent is "
                       "found: ParentNotFound, not BadName.",
                       bc.c.bytes, parent));
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
      Case c = ChainInvalid(name, "R3", ErrorCode::kReferenceMismatch, what, Assemble(m), pe.bytes);
      if (name == "invalid-reference-missing-tensor")
        c.by_construction = "without a parent tensor 'a' there are no reference bytes to decode "
                            "'a' with";
      s.Add(std::move(c));
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
    m.h.tensors[0].predictor = static_cast<Predictor>(4);
    s.Add(ChainInvalid("invalid-predictor-out-of-range", "T6", ErrorCode::kFieldOutOfRange,
                       "Tensor 'a' of a link has predictor 4, which no version defines (0.8 has "
                       "0..3).",
                       Assemble(m), bc.p.bytes)
              .WithoutRuleFails(ErrorCode::kChunkChecksum));
    Model k = FromFile(BaseFile());
    k.h.tensors[0].predictor = Predictor::kXorRef;
    s.Add(Invalid("invalid-predictor-without-link", "full", "T7", ErrorCode::kBadLink,
                  "A keyframe (no link, feature bit 0 clear) whose tensor 'a' has predictor XorRef.",
                  Assemble(k))
              .WithoutRuleFails(ErrorCode::kReferenceRequired));
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
                       Assemble(d), bc.p.bytes)
              .WithoutRuleFails(ErrorCode::kBadChain));
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

}  // namespace ckz::vectors
