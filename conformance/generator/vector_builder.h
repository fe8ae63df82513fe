// What the conformance generator builds cases from: deterministic data, checkpoints and the
// files they come from, encoding with the reference Writer, and files taken apart into a
// `Model` and assembled again (for invalid files and unusual valid layouts). Shared by every
// vectors_*.cc; nothing here knows about cases or the manifest (vector_suite.h does).
#ifndef CKZ_CONFORMANCE_GENERATOR_VECTOR_BUILDER_H_
#define CKZ_CONFORMANCE_GENERATOR_VECTOR_BUILDER_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ckz/archive.h"
#include "ckz/lstm_model.h"
#include "ckz/status.h"
#include "ckz/types.h"
#include "ckz/writer.h"
#include "common/index_model.h"
#include "format/header_build.h"

namespace ckz::vectors {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// ------------------------------------------------------------------------------------------
// Failing loudly.

[[noreturn]] void Die(const std::string& message);
void Check(bool ok, const std::string& what);
void MustOk(const Status& s, const std::string& what);
template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what + ": " + r.status().ToString());
  return std::move(r).value();
}

std::string Hex(const uint8_t* p, size_t n);
uint64_t Align64(uint64_t x);
Bytes Str(const std::string& s);

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

uint64_t LoadElem(const uint8_t* p, size_t w);
void StoreElem(uint8_t* p, size_t w, uint64_t v);
uint64_t Mask(size_t w);
uint64_t Elements(const std::vector<uint64_t>& shape);

// Element bit patterns that look like a trained tensor: floats of magnitude ~2^-9..2^-2 with
// random mantissas, small signed integers (now and then a large one), 0/1 bools.
Bytes Values(DType dtype, uint64_t n, uint64_t seed);
// The next training step: float bit patterns moved by a few units in the last place, integers
// now and then by one or two, a few bools flipped.
Bytes NextStep(DType dtype, const Bytes& prev, uint64_t seed);

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
  // (0.7) With a level kind (spec 7.9): its levels instead.
  std::optional<QuantizationInfo> quant;
  Bytes indices;
  std::vector<int32_t> levels;
  bool HasLevels() const { return quant && quant->IsLevels(); }
  TensorSpec Spec() const { return TensorSpec{name, dtype, shape, role, owner}; }
};

T MakeT(const std::string& name, DType dtype, std::vector<uint64_t> shape, uint64_t seed,
        Role role = Role::kOther, int32_t owner = -1);
// A tensor given as element bit patterns.
T FromElems(const std::string& name, DType dtype, std::vector<uint64_t> shape,
            const std::vector<uint64_t>& elems);

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
  // (0.10) Written with moment aux levels (spec 7.9.3, required feature bit 9) when a link.
  bool moment_context = false;

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
Ckpt Single(std::vector<T> tensors, const std::string& path = "model.safetensors");
// Each tensor of `c` moved one training step.
Ckpt Next(const Ckpt& c, uint64_t seed);
// The same with no quantization left (the tensors to be coded again are given theirs).
Ckpt NextLossless(const Ckpt& c, uint64_t seed);

// Spec 7.9.3 read from the text, for checking the writer's level files: a level tensor's aux
// tensor (7.7.2's rule over the level kinds; null if none), and its parent levels (the
// parent's tensor of its name, dtype and shape with a level kind; null if none).
const T* SpecAux(const Ckpt& c, const T& t);
const int32_t* SpecParentLevels(const Ckpt* parent, const T& t);
// The aux levels a decoder uses for level tensor t of `c` (a link of `parent`, or a keyframe):
// its aux tensor's, else (0.10, c written with moment contexts) its Moment1's in the parent;
// null if none.
const int32_t* SpecAuxLevels(const Ckpt& c, const Ckpt* parent, const T& t);

// A level kind's quantization (spec 7.9) without a step source.
QuantizationInfo LevelQuant(QuantKind kind, float step, float scale = 1.0f, int8_t log_unit = 0);
// Levels shaped like the rate-distortion planner's: about `zeros` in 8 zero, magnitudes
// mostly 1..3 with a tail past the unary range (an escape one time in `escape_one_in`);
// where `like` (the parent's levels) is not zero, often near it.
std::vector<int32_t> PlannerLevels(uint64_t n, uint64_t seed,
                                   const std::vector<int32_t>* like = nullptr, unsigned zeros = 3,
                                   uint64_t escape_one_in = 48);

// Index patterns shaped like ExCP's (what the cm contexts are for): a weight's indices pruned
// in whole rows now and then and elsewhere about one in four, values often repeating the left
// neighbour's.
Bytes WeightIndices(uint64_t n, uint64_t row, size_t centres, uint64_t seed);
// Indices that follow `like` (with `like_centres` centres): non-zero only where `like` is
// (kept with probability keep/8), plus one in `extra` of the other elements (0: none); values
// mostly near like's rank, so the value contexts see related buckets.
Bytes FollowIndices(const Bytes& like, size_t like_centres, size_t centres, uint64_t seed,
                    unsigned keep = 7, unsigned extra = 16);

struct Sources {
  std::vector<SourceFileInfo> infos;
  std::map<std::string, Bytes> outputs;  // path -> the file's bytes: what decoding must give
};
Sources BuildSources(const Ckpt& c);

// ------------------------------------------------------------------------------------------
// Encoding with the reference Writer.

EncodeOptions Opt(StreamCodec codec, bool planes, uint64_t chunk = 1u << 20,
                  Predictor predictor = Predictor::kNone);

struct Encoded {
  Bytes bytes;
  ContentId id{};
};

// (0.9) An LSTM level model for the writer (spec 7.11, Writer::SetLstmModel): level chunks are
// coded with it (every one with EncodeOptions::force_codec kLstmLevels, else each the smaller
// of cml and lstm), and the header holds it (when a chunk uses it) or, with `from_parent`,
// names the parent's.
struct LstmUse {
  std::shared_ptr<const LstmModel> model;
  bool from_parent = false;
};

// With a link, each tensor with `predict` set is predicted from the parent tensor of the same
// name (when the parent has one of the same byte length; its shape and dtype are deliberately
// not compared, so mismatches can be made). Quantized tensors get the contexts a decoder
// derives (spec 7.7.2, 7.9.3: parent indices or levels of the same family, aux by
// CmAuxTensor) and, for a step source, the parent's tensor of that name.
Encoded Encode(const Ckpt& c, const EncodeOptions& options,
               const std::optional<LinkInfo>& link = std::nullopt, const Ckpt* parent = nullptr,
               const LstmUse& lstm = {});
LinkInfo LinkTo(const Encoded& parent, const Ckpt& parent_ckpt, const std::string& hint,
                uint32_t depth);

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
  // The header region's bytes from the FlatBuffers buffer: (0.6) a coded header (4.1), or a
  // buffer edited by hand; unset: the buffer itself. `required` is not touched.
  std::function<Bytes(const Bytes&)> code_header;
};

Model FromFile(const Bytes& file);
Bytes Assemble(const Model& m);
uint64_t HeaderLength(const Bytes& f);
uint64_t HeaderOffset(const Bytes& f);

// Hand edits of a FlatBuffers header buffer, for headers the builder cannot write: the
// positions in `buffer` of a table of it, of that table's vtable, and of its field with vtable
// slot `vt` (which must be present).
size_t TablePosition(const Bytes& buffer, const void* table);
size_t VtablePosition(const Bytes& buffer, const void* table);
size_t FieldPosition(const Bytes& buffer, const void* table, uint16_t vt);

// ------------------------------------------------------------------------------------------
// Hand-made chunks and zstd frames.

// A zstd frame (`window_log` 0: libzstd's choice of window; `prefix`: a raw-content history).
Bytes Zstd(const uint8_t* p, size_t n, bool checksum = false, bool content_size = true,
           int level = 3, int window_log = 0, ByteSpan prefix = {});
Bytes Zstd(const Bytes& b, bool checksum = false, bool content_size = true);
// The reference writer's coded header (Appendix A): zstd level 19, content size, no checksum.
Bytes WriterHeaderFrame(const Bytes& header);
// A chunk's stored bytes: the stream directory, then the streams.
Bytes MakeChunk(const std::vector<std::pair<StreamCodec, Bytes>>& streams);
// Byte planes of whole elements: plane p holds byte p of every element.
std::vector<Bytes> Planes(const uint8_t* p, size_t n, size_t w);
// Replaces stream 0 of a one-stream chunk (its directory length too).
void SetStream(Bytes& chunk, const Bytes& stream);

// ------------------------------------------------------------------------------------------
// Checkpoints and files used by several groups of cases.

std::vector<T> EveryDtype(uint64_t seed);
// The base of most invalid cases: "a" (F32[40], a Weight, three chunks of 64, 64 and 32 bytes)
// and "b" (I64[4], one chunk), one safetensors file, all streams stored.
Ckpt BaseCkpt();
Bytes BaseFile(StreamCodec codec = StreamCodec::kStored, bool planes = false);

// Tensors without source files (spec 8: a bare tensor set): 'w' (F32 [3, 4]) and 'n' (I64).
Ckpt BareCkpt();

// A keyframe and a link predicted from it (XorRef, stored streams, 64-byte chunks), for the
// chain rules. Files: input.ckz (the link) and parent-1.ckz.
struct BaseChain {
  Ckpt parent, child;
  Encoded p, c;
};
BaseChain MakeBaseChain(Predictor predictor = Predictor::kXorRef);

// A chain written level by level: levels[0] is the keyframe, each next one a link to the one
// before. Returns the encoded files, keyframe first.
struct Level {
  Level(Ckpt c, EncodeOptions o, LstmUse l = {})
      : ckpt(std::move(c)), options(std::move(o)), lstm(std::move(l)) {}
  Ckpt ckpt;
  EncodeOptions options;
  LstmUse lstm;  // (0.9) none by default
};
std::vector<Encoded> WriteChain(const std::vector<Level>& levels,
                                const std::vector<std::string>& names);
// The case files of a chain: the last level is input.ckz, level n-1-k is parent-k.ckz.
std::vector<std::string> ChainNames(size_t levels);

// Weights, a bias, an F16 weight and an I64 scalar, step 1000: the base of chains.
Ckpt ChainBase(uint64_t seed);

// ------------------------------------------------------------------------------------------
// Quantized tensors (spec 7.6).

// A codebook of `n` centres given as exact binary32 bit patterns: sorted, spread over
// +-2^-7..2^-3 (integer arithmetic only, so every machine makes the same one).
std::vector<float> Codebook(size_t n, uint64_t seed);
// Makes tensor `name` of `c` quantized: `kind`, `bits`, `centres` centres, indices drawn from
// `seed` (about one in `zero_every` pruned; every index value used when the tensor is large
// enough), and its bytes the reconstruction that decoders must produce: the writer's (spec
// 7.6 is checked against independent arithmetic in tests/quantize_test.cc; here the suite's
// decode check makes the reference decoder agree with it).
void Quantize(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits, size_t centres,
              uint64_t seed, const Ckpt* parent, float scale = 1.0f, unsigned zero_every = 4);
// The same with the indices given (codebook from `seed`).
void QuantizeWith(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits,
                  size_t centres, uint64_t seed, const Ckpt* parent, float scale, Bytes indices);
// The same with the codebook given, in the order given (not necessarily sorted).
void QuantizeCentres(Ckpt& c, const std::string& name, QuantKind kind, unsigned bits,
                     std::vector<float> codebook, const Ckpt* parent, float scale, Bytes indices);
// Stored streams for lossless tensors, `index_codec` for index streams.
EncodeOptions IndexOpt(StreamCodec index_codec, uint64_t chunk = 1u << 20);

// (0.7) Makes tensor `name` of `c` a level tensor (spec 7.9): quantization `q` (a level kind),
// one level per element, and its bytes the reconstruction that decoders must produce: the
// library's (vectors_levels.cc checks it against its own arithmetic). The reference and the
// step source are the tensors of `parent` named like `name` and like tensors[q.step_source].
void SetLevels(Ckpt& c, const std::string& name, const QuantizationInfo& q,
               std::vector<int32_t> levels, const Ckpt* parent);
// The roles CmAuxTensor looks at, for the tensors of `c`.
std::vector<CmTensorRole> Roles(const Ckpt& c);

// ------------------------------------------------------------------------------------------
// Spec 7.6's F16/BF16 rounding, written apart from the library (for the double-rounding cases
// of 7.6 and 7.9): `v` (any binary64 value but a NaN) rounded once, to nearest, ties to even,
// into a float format with `mant` fraction bits and smallest normal exponent `emin` (F16: 10,
// -14; BF16: 7, -126). Magnitudes that round past the largest finite value give infinity.
uint16_t RoundOnce(double v, int mant, int emin, int bias);
uint16_t RoundF16(double v);
uint16_t RoundBF16(double v);
// Exact widenings of F16 and BF16 values (infinities included, NaNs refused).
double WidenF16(uint16_t h);
double WidenBF16(uint16_t b);
// A binary32 value given as an exact sum of powers of two; checked to be exact.
float ExactF32(double v);

}  // namespace ckz::vectors

#endif  // CKZ_CONFORMANCE_GENERATOR_VECTOR_BUILDER_H_
