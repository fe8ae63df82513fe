// Streaming writer: placeholder preamble, chunks appended as tensors arrive (a bounded window
// encoded in parallel, written in order so the output never depends on the thread count),
// then the FlatBuffers header, then the real preamble patched over the placeholder.
#include "ckz/writer.h"

#include <atomic>
#include <algorithm>
#include <cmath>
#include <functional>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "ckz/content_id.h"
#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/index_model.h"
#include "common/parallel.h"
#include "common/quantize.h"
#include "compress/chunk_encoder.h"
#include "compress/prolog_encoder.h"
#include "format/header_build.h"
#include "format/preamble.h"
#include "format/rules.h"

namespace ckz {
namespace {

// EncodeOptions::chunk_bytes = 0 (see there).
constexpr uint64_t kDefaultChunkBytes = uint64_t{1} << 20;
constexpr uint64_t kDefaultQuantizedChunkBytes = uint64_t{1} << 18;

}  // namespace

Status MemorySink::Write(ByteSpan bytes) {
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  return Status::Ok();
}

Status MemorySink::WriteAt(uint64_t offset, ByteSpan bytes) {
  if (offset > bytes_.size() || bytes.size > bytes_.size() - offset)
    return Status(ErrorCode::kInvalidArgument, "WriteAt past the written bytes");
  std::memcpy(bytes_.data() + offset, bytes.data, bytes.size);
  return Status::Ok();
}

struct Writer::Impl {
  std::unique_ptr<OutputSink> sink;
  EncodeOptions options;
  Status error;  // first failure; everything after it is refused
  bool finished = false;
  uint64_t position = 0;
  uint64_t bytes_in = 0;

  std::optional<int64_t> step;
  std::optional<LinkInfo> link;
  std::string writer_name = "ckz reference";
  std::vector<MetaEntry> metadata;
  std::vector<SourceFileInfo> files;
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string, size_t> names;
  ContentIdBuilder content_id;
  std::vector<std::unique_ptr<ChunkEncoder>> encoders;

  Status Append(ByteSpan bytes) {
    CKZ_RETURN_IF_ERROR(sink->Write(bytes));
    position += bytes.size;
    return Status::Ok();
  }

  Status PadTo64() {
    static const uint8_t kZeros[kAlignment] = {};
    uint64_t aligned = position;
    if (!AlignUp(position, kAlignment, &aligned))
      return Status(ErrorCode::kLimitExceeded, "output larger than 2^64 bytes");
    return Append(ByteSpan(kZeros, size_t(aligned - position)));
  }

  Status Fail(Status s) {
    if (error.ok()) error = s;
    return s;
  }

  using EncodeChunkFn = std::function<Status(uint64_t begin, uint64_t length, ChunkEncoder& encoder,
                                             std::vector<uint8_t>* out, uint32_t* crc)>;
  // A tensor whose arguments are checked and whose chunks are still to be encoded.
  struct Pending {
    TensorInfo info;
    // Once, before its chunks (may be empty); then each chunk; then, in tensor order, `done`.
    std::function<void(TensorInfo& info, int threads)> prepare;
    EncodeChunkFn encode;
    std::function<void(const TensorInfo& info, int threads)> done;
    uint64_t chunk_raw = 0;
    size_t chunk_count = 0;
    size_t chunks_done = 0;
  };
  Status StartTensor(const TensorSpec& spec, uint64_t size, uint64_t reference_size,
                     TensorInfo* info);
  // AddQuantizedTensor(Chunked) and AddLevelTensor(Chunked); `reference_size` and
  // `contexts_cover` are what the whole-array forms check of their spans.
  Status QueueQuantized(const TensorSpec& spec, const QuantizationInfo& quant, ByteSpan indices,
                        MutableByteSpan decoded, const ChunkContexts& contexts,
                        uint64_t reference_size, bool contexts_cover);
  Status QueueLevels(const TensorSpec& spec, const QuantizationInfo& quant, const int32_t* levels,
                     MutableByteSpan decoded, const ChunkContexts& contexts,
                     uint64_t reference_size);
  Status Queue(Pending pending);
  Status Flush();
  void Layout(Pending* p) const;
  std::vector<Pending> pending;
  bool batching = false;
  bool quantized = false;  // sets required feature bit 1
  bool levels = false;     // (0.7) sets required feature bit 6
  std::atomic<bool> context_model{false};  // some chunk chose cm: required feature bit 2
  std::atomic<bool> float_model{false};    // some chunk chose cmf: required feature bit 4
  bool coded_prolog = false;               // required feature bit 3
  // (0.9) The LSTM model level chunks may code with (spec 7.11), and whether the header names
  // the parent's instead of holding it.
  std::shared_ptr<const LstmModel> lstm;
  bool lstm_from_parent = false;
  std::atomic<uint64_t> lstm_chunks{0};  // chunks that chose codec 6 or 7
  std::atomic<bool> lstm_indices{false};  // (0.11) some chunk chose codec 7: feature bit 10
  // (0.10) Required feature bit 9: the caller's contexts follow spec 7.9.3's moment aux levels,
  // and some level weight has them (the spec asks writers to set the bit only where used).
  bool moment_context = false, moment_used = false;
};

const EncodeOptions& Writer::options() const { return impl_->options; }

Writer::Writer(std::unique_ptr<OutputSink> sink, EncodeOptions options) : impl_(new Impl) {
  impl_->sink = std::move(sink);
  impl_->options = std::move(options);
  impl_->options.threads = std::max(1, impl_->options.threads);
  const uint8_t placeholder[kPreambleSize] = {};
  (void)impl_->Fail(impl_->Append(ByteSpan(placeholder, kPreambleSize)));
}

Writer::~Writer() = default;

void Writer::SetStep(int64_t step) { impl_->step = step; }
void Writer::SetLink(const LinkInfo& link) { impl_->link = link; }
Status Writer::SetLstmModel(std::shared_ptr<const LstmModel> model, bool from_parent) {
  // What the coder needs to run without overrunning its state; the other rules of spec
  // 7.11.1 (LM1) are the reader's, so that the conformance generator can write files that
  // break them.
  if (!model || !model->Runnable())
    return Status(ErrorCode::kInvalidArgument,
                  "LSTM model whose sizes the coder cannot run (spec 7.11.1)");
  if (from_parent && !impl_->link)
    return Status(ErrorCode::kInvalidArgument,
                  "an LSTM model from the parent needs SetLink first (rule LM2)");
  impl_->lstm = std::move(model);
  impl_->lstm_from_parent = from_parent;
  return Status::Ok();
}
uint64_t Writer::lstm_chunks() const { return impl_->lstm_chunks.load(); }
void Writer::SetMomentContext(bool on) { impl_->moment_context = on; }
void Writer::SetWriterName(std::string name) { impl_->writer_name = std::move(name); }
void Writer::AddMetadata(MetaEntry entry) { impl_->metadata.push_back(std::move(entry)); }
void ClearCrc32PatchBytes(SourceFileInfo* file) {
  for (const Crc32Patch& p : file->crc32_patches)
    if (file->prolog.size() >= 4 && p.prolog_offset <= file->prolog.size() - 4)
      std::fill_n(file->prolog.begin() + ptrdiff_t(p.prolog_offset), 4, uint8_t{0});
}

void Writer::AddSourceFile(SourceFileInfo file, ByteSpan parent_prolog, uint32_t parent_file) {
  ClearCrc32PatchBytes(&file);
  if (!impl_->Fail(EncodeProlog(&file, parent_prolog, impl_->options.prolog_codec)).ok()) return;
  if (file.prolog_codec == PrologCodec::kZstdParent) file.prolog_parent_file = parent_file;
  impl_->coded_prolog |= file.prolog_codec != PrologCodec::kStored;
  impl_->files.push_back(std::move(file));
}

// Checks `spec` (and a data size of `size` bytes) as a reader would, and fills `info`.
Status Writer::Impl::StartTensor(const TensorSpec& spec, uint64_t size, uint64_t reference_size,
                                 TensorInfo* info) {
  if (!error.ok()) return error;
  if (finished) return Status(ErrorCode::kInvalidArgument, "a tensor added after Finish");
  const std::string field = "tensor '" + spec.name + "'";
  CKZ_RETURN_IF_ERROR(Fail(CheckName(spec.name, "tensor name")));
  if (names.count(spec.name))
    return Fail(Status(ErrorCode::kDuplicateName, field + " was already added"));
  if (uint8_t(spec.dtype) == 0 || uint8_t(spec.dtype) > kMaxDType)
    return Fail(Status(ErrorCode::kFieldOutOfRange, field + ": invalid dtype"));
  info->name = spec.name;
  info->dtype = spec.dtype;
  info->shape = spec.shape;
  info->role = spec.role;
  info->owner = spec.owner;
  CKZ_RETURN_IF_ERROR(
      Fail(ShapeBytes(info->shape, info->dtype, field, &info->num_elements, &info->byte_length)));
  if (size != info->byte_length)
    return Fail(Status(ErrorCode::kInvalidArgument,
                       field + ": " + std::to_string(size) + " bytes given, shape needs " +
                           std::to_string(info->byte_length)));
  if (reference_size != 0 && reference_size != size)
    return Fail(Status(ErrorCode::kReferenceMismatch,
                       field + ": reference has " + std::to_string(reference_size) +
                           " bytes, the tensor " + std::to_string(size)));
  names.emplace(spec.name, tensors.size() + pending.size());  // its index once appended
  return Status::Ok();
}

// The tensor's chunks: whole elements. An explicit chunk size is taken as it is (the last chunk
// holds the rest). By default, as few chunks as the default size allows, of equal size in whole
// elements (the last may be shorter by less than an element per chunk), so that decoding
// threads finish together.
uint64_t ChunkElements(const EncodeOptions& options, DType dtype, uint64_t elements,
                       bool quantized) {
  const uint64_t width = DTypeSize(dtype), size = elements * width;
  const uint64_t asked = options.chunk_bytes ? options.chunk_bytes
                         : quantized         ? kDefaultQuantizedChunkBytes
                                             : kDefaultChunkBytes;
  uint64_t chunk_raw = std::clamp<uint64_t>(asked / width * width, width,
                                            kMaxChunkRawBytes / width * width);
  if (options.chunk_bytes == 0 && size > 0) {
    const uint64_t count = (size + chunk_raw - 1) / chunk_raw;
    chunk_raw = (size / width + count - 1) / count * width;
  }
  return chunk_raw / width;
}

void Writer::Impl::Layout(Pending* p) const {
  const TensorInfo& info = p->info;
  const size_t width = DTypeSize(info.dtype);
  p->chunk_raw =
      ChunkElements(options, info.dtype, info.num_elements, info.quantization.has_value()) * width;
  p->chunk_count = size_t((info.byte_length + p->chunk_raw - 1) / p->chunk_raw);
}

Status Writer::Impl::Queue(Pending p) {
  pending.push_back(std::move(p));
  return batching ? Status::Ok() : Flush();
}

// Encodes the chunks of every pending tensor, a window of them at a time on the `threads`
// workers (chunks of several tensors share a window), and appends them in order: the output
// never depends on the thread count or on batching.
Status Writer::Impl::Flush() {
  std::vector<Pending> batch;
  batch.swap(pending);
  if (batch.empty() || !error.ok()) return error;
  const int threads = options.threads;
  // One tensor gets every thread; several get one each.
  if (batch.size() == 1) {
    if (batch[0].prepare) batch[0].prepare(batch[0].info, threads);
  } else {
    ParallelFor(batch.size(), threads, [&](size_t k, int) {
      if (batch[k].prepare) batch[k].prepare(batch[k].info, 1);
    });
  }
  struct Job {
    size_t tensor, chunk;
  };
  std::vector<Job> jobs;
  for (size_t k = 0; k < batch.size(); ++k) {
    Layout(&batch[k]);
    for (size_t c = 0; c < batch[k].chunk_count; ++c) jobs.push_back({k, c});
  }
  if (encoders.size() < size_t(threads)) encoders.resize(size_t(threads));
  const size_t window = size_t(threads) * 4;
  std::vector<std::vector<uint8_t>> encoded(std::min(window, jobs.size()));
  std::vector<uint32_t> crcs(encoded.size());
  std::vector<Status> results(encoded.size());
  size_t next = 0;  // the first tensor of the batch not yet appended to `tensors`
  auto finish_complete = [&] {
    for (; next < batch.size() && batch[next].chunks_done == batch[next].chunk_count; ++next) {
      if (batch[next].done) batch[next].done(batch[next].info, threads);
      tensors.push_back(std::move(batch[next].info));
    }
  };
  finish_complete();
  for (size_t base = 0; base < jobs.size(); base += window) {
    const size_t n = std::min(window, jobs.size() - base);
    ParallelFor(n, threads, [&](size_t i, int worker) {
      auto& encoder = encoders[size_t(worker)];
      if (!encoder) encoder = std::make_unique<ChunkEncoder>();
      const Pending& p = batch[jobs[base + i].tensor];
      const uint64_t begin = jobs[base + i].chunk * p.chunk_raw;
      results[i] = p.encode(begin, std::min<uint64_t>(p.chunk_raw, p.info.byte_length - begin),
                            *encoder, &encoded[i], &crcs[i]);
    });
    for (size_t i = 0; i < n; ++i) CKZ_RETURN_IF_ERROR(Fail(results[i]));
    for (size_t i = 0; i < n; ++i) {
      Pending& p = batch[jobs[base + i].tensor];
      const uint64_t begin = jobs[base + i].chunk * p.chunk_raw;
      CKZ_RETURN_IF_ERROR(Fail(PadTo64()));
      ChunkInfo chunk;
      chunk.offset = position;
      chunk.stored_length = encoded[i].size();
      chunk.raw_offset = begin;
      chunk.raw_length = std::min<uint64_t>(p.chunk_raw, p.info.byte_length - begin);
      chunk.crc32c = crcs[i];
      CKZ_RETURN_IF_ERROR(Fail(Append(ByteSpan(encoded[i]))));
      p.info.stored_length += chunk.stored_length;
      p.info.chunks.push_back(chunk);
      ++p.chunks_done;
      bytes_in += chunk.raw_length;
    }
    finish_complete();
    if (options.progress) options.progress(bytes_in);
  }
  return Status::Ok();
}

void Writer::BeginBatch() { impl_->batching = true; }

Status Writer::EndBatch() {
  impl_->batching = false;
  return impl_->Flush();
}

void Writer::AbortBatch(Status why) {
  impl_->pending.clear();
  impl_->batching = false;
  (void)impl_->Fail(why.ok() ? Status(ErrorCode::kInvalidArgument, "batch aborted") : why);
}

Status Writer::AddTensor(const TensorSpec& spec, ByteSpan data, ByteSpan reference) {
  Impl& w = *impl_;
  Impl::Pending p;
  CKZ_RETURN_IF_ERROR(w.StartTensor(spec, data.size, reference.size, &p.info));
  if (!w.link) reference = ByteSpan();  // only a link may predict
  struct Chosen {
    TensorCoding coding;
    Digest digest{};
  };
  auto chosen = std::make_shared<Chosen>();
  p.prepare = [&w, chosen, data, reference](TensorInfo& info, int threads) {
    chosen->coding = ChooseCoding(info.dtype, data, reference, w.options);
    info.predictor = chosen->coding.predictor;
    info.byte_planes = chosen->coding.byte_planes;
    chosen->digest = TensorDigest(data, threads);
  };
  const DType dtype = p.info.dtype;
  p.encode = [&w, chosen, data, reference, dtype](uint64_t begin, uint64_t len,
                                                  ChunkEncoder& encoder,
                                                  std::vector<uint8_t>* out, uint32_t* crc) {
    const TensorCoding& coding = chosen->coding;
    const ByteSpan ref =
        coding.predictor == Predictor::kNone ? ByteSpan() : reference.subspan(begin, len);
    encoder.Encode(coding, dtype, data.subspan(begin, len), ref, w.options, out);
    if ((*out)[0] == uint8_t(StreamCodec::kCmFloat)) w.float_model = true;
    *crc = Crc32c(data.data + begin, len);
    return Status::Ok();
  };
  p.done = [&w, chosen](const TensorInfo& info, int) {
    w.content_id.AddTensor(info.name, info.dtype, info.shape, chosen->digest);
  };
  return w.Queue(std::move(p));
}

namespace {

// A ChunkContexts function that copies from a whole array in memory (`element_bytes` per
// element).
std::function<Status(uint64_t, MutableByteSpan)> SliceOf(const uint8_t* whole,
                                                         size_t element_bytes) {
  return [whole, element_bytes](uint64_t first, MutableByteSpan out) {
    std::memcpy(out.data, whole + first * element_bytes, out.size);
    return Status::Ok();
  };
}

// Fills `buffer` with `bytes` bytes from `fetch` at element `first`.
Status Fetch(const std::function<Status(uint64_t, MutableByteSpan)>& fetch, uint64_t first,
             uint64_t bytes, std::vector<uint8_t>* buffer) {
  buffer->resize(size_t(bytes));
  return fetch(first, MutableByteSpan(*buffer));
}

// The same for `count` levels (four bytes each).
Status FetchLevels(const std::function<Status(uint64_t, MutableByteSpan)>& fetch, uint64_t first,
                   uint64_t count, std::vector<int32_t>* levels) {
  levels->resize(size_t(count));
  return fetch(first, MutableByteSpan(reinterpret_cast<uint8_t*>(levels->data()), count * 4));
}

}  // namespace

Status Writer::AddQuantizedTensor(const TensorSpec& spec, const QuantizationInfo& quant,
                                  ByteSpan indices, ByteSpan reference, MutableByteSpan decoded,
                                  const IndexContexts& contexts) {
  ChunkContexts chunked;
  // The checks the whole-array form always made (an empty span for a tensor without
  // elements counts as given).
  if (reference.size == decoded.size)
    chunked.reference = SliceOf(reference.data, DTypeSize(spec.dtype));
  const bool cover = (contexts.parent_centres == 0 || contexts.parent.size == indices.size) &&
                     (contexts.aux_centres == 0 || contexts.aux.size == indices.size);
  if (cover && contexts.parent_centres != 0) {
    chunked.parent = SliceOf(contexts.parent.data, 1);
    chunked.parent_centres = contexts.parent_centres;
  }
  if (cover && contexts.aux_centres != 0) {
    chunked.aux = SliceOf(contexts.aux.data, 1);
    chunked.aux_centres = contexts.aux_centres;
  }
  return impl_->QueueQuantized(spec, quant, indices, decoded, chunked, reference.size, cover);
}

Status Writer::AddQuantizedTensorChunked(const TensorSpec& spec, const QuantizationInfo& quant,
                                         ByteSpan indices, MutableByteSpan decoded,
                                         const ChunkContexts& contexts) {
  return impl_->QueueQuantized(spec, quant, indices, decoded, contexts, 0, true);
}

Status Writer::Impl::QueueQuantized(const TensorSpec& spec, const QuantizationInfo& quant,
                                    ByteSpan indices, MutableByteSpan decoded,
                                    const ChunkContexts& contexts, uint64_t reference_size,
                                    bool contexts_cover) {
  Impl& w = *this;
  Impl::Pending p;
  TensorInfo& info = p.info;
  CKZ_RETURN_IF_ERROR(w.StartTensor(spec, decoded.size, reference_size, &info));
  const std::string field = "tensor '" + spec.name + "'";
  const size_t width = DTypeSize(info.dtype);
  if (!DTypeIsFloat(info.dtype) || quant.bits == 0 || quant.bits > kMaxQuantBits ||
      quant.codebook.empty() || quant.codebook.size() > (1u << quant.bits) - 1 ||
      uint8_t(quant.kind) == 0 || uint8_t(quant.kind) > kMaxQuantKind)
    return w.Fail(Status(ErrorCode::kFieldOutOfRange, field + ": invalid quantization"));
  for (float c : quant.codebook)
    if (!std::isfinite(c))
      return w.Fail(Status(ErrorCode::kFieldOutOfRange, field + ": a centre is not finite"));
  if (indices.size != info.num_elements)
    return w.Fail(Status(ErrorCode::kInvalidArgument, field + ": one index per element needed"));
  for (size_t i = 0; i < indices.size; ++i)
    if (indices.data[i] > quant.codebook.size())
      return w.Fail(Status(ErrorCode::kCodebookIndex, field + ": index beyond the codebook"));
  if (quant.kind == QuantKind::kResidual && (!w.link || !contexts.reference))
    return w.Fail(Status(ErrorCode::kReferenceRequired,
                         field + ": a residual codebook needs a link and the reference bytes"));
  if (!contexts_cover)
    return w.Fail(Status(ErrorCode::kInvalidArgument,
                         field + ": cm context indices must cover the tensor"));
  p.info.quantization = quant;
  w.quantized = true;
  const std::vector<uint64_t> shape = spec.shape;
  const DType dtype = spec.dtype;
  const uint32_t role = LstmRoleOf(spec.role);
  p.encode = [&w, quant, dtype, shape, width, indices, decoded, contexts, role](
                 uint64_t begin, uint64_t len, ChunkEncoder& encoder, std::vector<uint8_t>* out,
                 uint32_t* crc) -> Status {
    const uint64_t first = begin / width, count = len / width;
    ChunkEncoder::Inputs& in = encoder.inputs();
    const bool residual = quant.kind == QuantKind::kResidual;
    if (residual) CKZ_RETURN_IF_ERROR(Fetch(contexts.reference, first, len, &in.reference));
    ReconstructQuantized(quant, dtype, indices.data + first, count,
                         residual ? in.reference.data() : nullptr, decoded.data + begin);
    IndexModelInputs cm;  // spec 7.7.2
    cm.centres = uint32_t(quant.codebook.size());
    cm.first = first;
    cm.row = shape.size() >= 2 ? shape.back() : 0;
    if (contexts.parent_centres != 0 && contexts.parent) {
      CKZ_RETURN_IF_ERROR(Fetch(contexts.parent, first, count, &in.parent));
      cm.parent = in.parent.data();
      cm.parent_centres = contexts.parent_centres;
    }
    if (contexts.aux_centres != 0 && contexts.aux) {
      CKZ_RETURN_IF_ERROR(Fetch(contexts.aux, first, count, &in.aux));
      cm.aux = in.aux.data();
      cm.aux_centres = contexts.aux_centres;
    }
    if (w.lstm) {  // (0.11) spec 7.11.7: the model where it codes the chunk smaller
      cm.lstm = w.lstm.get();
      cm.role = role;
    }
    encoder.EncodeIndices(indices.subspan(first, count), quant.bits, cm, w.options, out);
    if ((*out)[0] == uint8_t(StreamCodec::kCm)) w.context_model = true;
    if ((*out)[0] == uint8_t(StreamCodec::kLstmIndices)) {
      w.lstm_indices = true;
      ++w.lstm_chunks;
    }
    *crc = Crc32c(decoded.data + begin, len);
    return Status::Ok();
  };
  p.done = [&w, decoded](const TensorInfo& info, int threads) {
    w.content_id.AddTensor(info.name, info.dtype, info.shape,
                           TensorDigest(ByteSpan(decoded), threads));
  };
  return w.Queue(std::move(p));
}

Status Writer::AddLevelTensor(const TensorSpec& spec, const QuantizationInfo& quant,
                              const int32_t* levels, ByteSpan reference, ByteSpan step_source,
                              DType step_source_dtype, MutableByteSpan decoded,
                              const LevelContexts& contexts) {
  ChunkContexts chunked;
  // The checks the whole-array form always made (an empty span for a tensor without
  // elements counts as given).
  if (reference.size == decoded.size)
    chunked.reference = SliceOf(reference.data, DTypeSize(spec.dtype));
  if (contexts.parent)
    chunked.parent = SliceOf(reinterpret_cast<const uint8_t*>(contexts.parent), 4);
  if (contexts.aux) chunked.aux = SliceOf(reinterpret_cast<const uint8_t*>(contexts.aux), 4);
  chunked.step_source_dtype = step_source_dtype;
  const uint64_t elements = decoded.size / std::max<size_t>(1, DTypeSize(spec.dtype));
  if (DTypeIsFloat(step_source_dtype) &&
      step_source.size == elements * DTypeSize(step_source_dtype))
    chunked.step_source = SliceOf(step_source.data, DTypeSize(step_source_dtype));
  return impl_->QueueLevels(spec, quant, levels, decoded, chunked, reference.size);
}

Status Writer::AddLevelTensorChunked(const TensorSpec& spec, const QuantizationInfo& quant,
                                     const int32_t* levels, MutableByteSpan decoded,
                                     const ChunkContexts& contexts) {
  return impl_->QueueLevels(spec, quant, levels, decoded, contexts, 0);
}

Status Writer::Impl::QueueLevels(const TensorSpec& spec, const QuantizationInfo& quant,
                                 const int32_t* levels, MutableByteSpan decoded,
                                 const ChunkContexts& contexts, uint64_t reference_size) {
  Impl& w = *this;
  Impl::Pending p;
  TensorInfo& info = p.info;
  CKZ_RETURN_IF_ERROR(w.StartTensor(spec, decoded.size, reference_size, &info));
  const std::string field = "tensor '" + spec.name + "'";
  const size_t width = DTypeSize(info.dtype);
  // Rule Q9 on what the caller gives (the step source's index is checked in Finish, Q10).
  const bool log = quant.kind == QuantKind::kLevelLog;
  if (!DTypeIsFloat(info.dtype) || !quant.IsLevels() || quant.bits != 0 ||
      !quant.codebook.empty() || !StepRangeIsNormal(quant.step, quant.step_limit) ||
      quant.step_limit > kMaxStepLimit || (!log && quant.log_unit != 0) ||
      quant.log_unit < kMinLogUnit || quant.log_unit > kMaxLogUnit ||
      (quant.step_source < 0 && (quant.step_slope != 0 || quant.step_center != 0 ||
                                 quant.step_limit != 0)) ||
      (quant.step_source >= 0 && quant.step_slope != 1 && quant.step_slope != -1) ||
      !std::isfinite(quant.reference_scale) || !(quant.reference_scale > 0) ||
      (quant.kind == QuantKind::kLevelDirect && quant.reference_scale != 1.0f))
    return w.Fail(Status(ErrorCode::kFieldOutOfRange, field + ": invalid level quantization"));
  // A weight has aux levels only as moment aux levels (7.7.2's rule gives it no aux tensor).
  if (spec.role == Role::kWeight && contexts.aux) w.moment_used = true;
  for (uint64_t i = 0; i < info.num_elements; ++i)
    if (levels[i] > kMaxLevel || levels[i] < -kMaxLevel)
      return w.Fail(Status(ErrorCode::kFieldOutOfRange, field + ": a level beyond 2^24 - 1"));
  if (quant.NeedsReference() && (!w.link || !contexts.reference))
    return w.Fail(Status(ErrorCode::kReferenceRequired,
                         field + ": a residual level kind needs a link and the reference bytes"));
  if (quant.step_source >= 0 &&
      (!w.link || !DTypeIsFloat(contexts.step_source_dtype) || !contexts.step_source))
    return w.Fail(Status(ErrorCode::kReferenceRequired,
                         field + ": steps from a step source need a link and the parent's bytes "
                                 "of that tensor"));
  p.info.quantization = quant;
  w.quantized = true;
  w.levels = true;
  const uint64_t row = spec.shape.size() >= 2 ? spec.shape.back() : 0;
  const DType dtype = spec.dtype;
  const LstmModel* lstm = w.lstm.get();
  const uint32_t role = LstmRoleOf(spec.role);
  std::atomic<uint64_t>* lstm_chunks = &w.lstm_chunks;
  const bool force_lstm = w.options.force_codec == StreamCodec::kLstmLevels;
  p.encode = [quant, dtype, row, width, levels, decoded, contexts, lstm, role, lstm_chunks,
              force_lstm](
                 uint64_t begin, uint64_t len, ChunkEncoder& encoder, std::vector<uint8_t>* out,
                 uint32_t* crc) -> Status {
    const uint64_t first = begin / width, count = len / width;
    ChunkEncoder::Inputs& in = encoder.inputs();
    in.shifts.resize(count);
    const uint8_t* source = nullptr;
    if (quant.step_source >= 0) {
      CKZ_RETURN_IF_ERROR(Fetch(contexts.step_source, first,
                                count * DTypeSize(contexts.step_source_dtype), &in.step_source));
      source = in.step_source.data();
    }
    StepShifts(quant, contexts.step_source_dtype, source, count, in.shifts.data());
    if (quant.NeedsReference()) CKZ_RETURN_IF_ERROR(Fetch(contexts.reference, first, len, &in.reference));
    ReconstructLevels(quant, dtype, levels + first, in.shifts.data(), count,
                      quant.NeedsReference() ? in.reference.data() : nullptr,
                      decoded.data + begin);
    LevelModelInputs cml;  // spec 7.9.3
    cml.first = first;
    cml.row = row;
    if (contexts.parent) {
      CKZ_RETURN_IF_ERROR(FetchLevels(contexts.parent, first, count, &in.parent_levels));
      cml.parent = in.parent_levels.data();
    }
    if (contexts.aux) {
      CKZ_RETURN_IF_ERROR(FetchLevels(contexts.aux, first, count, &in.aux_levels));
      cml.aux = in.aux_levels.data();
    }
    if (lstm) {  // spec 7.11: the model where it codes the chunk smaller
      cml.lstm = lstm;
      cml.role = role;
    }
    if (encoder.EncodeLevels(levels + first, count, cml, force_lstm, out)) ++*lstm_chunks;
    *crc = Crc32c(decoded.data + begin, len);
    return Status::Ok();
  };
  p.done = [&w, decoded](const TensorInfo& info, int threads) {
    w.content_id.AddTensor(info.name, info.dtype, info.shape,
                           TensorDigest(ByteSpan(decoded), threads));
  };
  return w.Queue(std::move(p));
}

Result<ContentId> Writer::Finish() {
  Impl& w = *impl_;
  w.batching = false;
  CKZ_RETURN_IF_ERROR(w.Flush());  // an unfinished batch
  if (!w.error.ok()) return w.error;
  if (w.finished) return Status(ErrorCode::kInvalidArgument, "Finish called twice");
  w.finished = true;

  // Check what the parser would check on the parts given by the caller.
  for (size_t i = 0; i < w.tensors.size(); ++i) {
    const TensorInfo& t = w.tensors[i];
    if (t.owner == -1) continue;
    if (t.owner < -1 || size_t(t.owner) >= w.tensors.size() || size_t(t.owner) == i ||
        (t.role != Role::kMoment1 && t.role != Role::kMoment2) ||
        w.tensors[size_t(t.owner)].role != Role::kWeight ||
        w.tensors[size_t(t.owner)].shape != t.shape)
      return w.Fail(Status(ErrorCode::kBadOwner,
                           "tensor '" + t.name + "': owner " + std::to_string(t.owner) +
                               " is not a same-shape weight (and the tensor not a moment)"));
  }
  for (size_t i = 0; i < w.tensors.size(); ++i) {  // rule Q10
    const TensorInfo& t = w.tensors[i];
    if (!t.quantization || t.quantization->step_source < 0) continue;
    const size_t s = size_t(t.quantization->step_source);
    if (s >= w.tensors.size() || s == i || !DTypeIsFloat(w.tensors[s].dtype) ||
        w.tensors[s].shape != t.shape)
      return w.Fail(Status(ErrorCode::kFieldOutOfRange,
                           "tensor '" + t.name + "': step source " + std::to_string(s) +
                               " is not another floating tensor of its shape"));
  }
  {
    std::unordered_set<std::string> paths, keys;
    std::vector<bool> listed(w.tensors.size(), false);
    for (const SourceFileInfo& f : w.files) {
      CKZ_RETURN_IF_ERROR(w.Fail(CheckRelativePath(f.path, "source file path")));
      if (!paths.insert(f.path).second)
        return w.Fail(Status(ErrorCode::kDuplicateName, "source file '" + f.path + "' twice"));
      for (uint32_t t : f.tensors) {
        if (t >= w.tensors.size() || listed[t] || f.format == SourceFormat::kRaw)
          return w.Fail(Status(ErrorCode::kFieldOutOfRange,
                               "source file '" + f.path + "' lists tensor " + std::to_string(t) +
                                   " that is missing, already listed, or in a raw file"));
        listed[t] = true;
      }
      if (f.prolog_codec == PrologCodec::kZstdParent && !w.link)
        return w.Fail(Status(ErrorCode::kInvalidArgument,
                             "source file '" + f.path + "': prolog coded against a parent, but "
                             "the file is not a link"));
      CKZ_RETURN_IF_ERROR(w.Fail(CheckSourceFilePieces(f.PrologLength(), f.tensors.size(), f.splits,
                                                       f.crc32_patches,
                                                       "source file '" + f.path + "'")));
    }
    for (size_t t = 0; t < listed.size(); ++t)
      if (!w.files.empty() && !listed[t])
        return w.Fail(Status(ErrorCode::kFieldOutOfRange,
                             "tensor '" + w.tensors[t].name + "' belongs to no source file"));
    for (const MetaEntry& e : w.metadata) {
      CKZ_RETURN_IF_ERROR(w.Fail(CheckName(e.key, "metadata key")));
      if (!keys.insert(e.key).second)
        return w.Fail(Status(ErrorCode::kDuplicateName, "metadata key '" + e.key + "' twice"));
    }
  }

  Archive header;
  header.content_id = w.content_id.Finish();
  header.step = w.step;
  header.link = w.link;
  const bool key_split =
      std::any_of(w.tensors.begin(), w.tensors.end(),
                  [](const TensorInfo& t) { return t.predictor == Predictor::kKeySplit; });
  header.tensors = std::move(w.tensors);
  header.files = std::move(w.files);
  header.metadata = std::move(w.metadata);
  header.writer = w.writer_name;
  // (0.9) A model taken from the parent stays named even when no chunk uses it, so that the
  // next link can take it from this file; an own model only when some chunk uses it.
  if (w.lstm && w.link && w.lstm_from_parent) {
    header.lstm_model = w.lstm;
    header.lstm_model_from_parent = true;
  } else if (w.lstm && w.lstm_chunks.load() > 0) {
    header.lstm_model = w.lstm;
    header.lstm_model_own = true;
  }
  const bool lstm = header.lstm_model != nullptr;
  std::vector<uint8_t> hdr = BuildHeader(header);
  if (hdr.size() > kMaxHeaderBytes)
    return w.Fail(Status(ErrorCode::kHeaderTooLarge,
                         "header would be " + std::to_string(hdr.size()) + " bytes"));
  bool coded_header = false;
  if (w.options.code_header) {
    std::vector<uint8_t> coded;
    CKZ_RETURN_IF_ERROR(w.Fail(CompressSmallFrame(ByteSpan(hdr), ByteSpan(), &coded)));
    if (coded.size() < hdr.size()) {
      hdr.swap(coded);
      coded_header = true;
    }
  }

  CKZ_RETURN_IF_ERROR(w.Fail(w.PadTo64()));
  Preamble p;
  p.major = kFormatMajor;
  p.minor = kFormatMinor;
  p.required_features = (w.link ? kFeatureReferenceChain : 0) |
                        (w.quantized ? kFeatureQuantized : 0) |
                        (w.context_model ? kFeatureContextModel : 0) |
                        (w.coded_prolog ? kFeatureCodedProlog : 0) |
                        (w.float_model ? kFeatureFloatModel : 0) |
                        (coded_header ? kFeatureCodedHeader : 0) |
                        (w.levels ? kFeatureLevels : 0) |
                        (key_split ? kFeatureKeySplit : 0) |
                        (lstm ? kFeatureLstm : 0) |
                        (w.lstm_indices ? kFeatureLstmIndices : 0) |
                        (w.moment_context && w.moment_used && w.link ? kFeatureMomentContext : 0);
  p.header_offset = w.position;
  p.header_length = hdr.size();
  p.header_crc32c = Crc32c(hdr.data(), hdr.size());
  CKZ_RETURN_IF_ERROR(w.Fail(w.Append(ByteSpan(hdr))));
  uint8_t preamble[kPreambleSize];
  EncodePreamble(p, preamble);
  CKZ_RETURN_IF_ERROR(w.Fail(w.sink->WriteAt(0, ByteSpan(preamble, kPreambleSize))));
  CKZ_RETURN_IF_ERROR(w.Fail(w.sink->Commit()));
  return header.content_id;
}

}  // namespace ckz
