// Checkpoint-level glue: feeding an input checkpoint to the Writer, and rebuilding the original
// files from a decoded chain.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>

#include "ckz/checkpoint.h"
#include "common/index_model.h"
#include "common/level_width.h"
#include "ckz/safetensors.h"
#include "ckz/torch.h"
#include "common/bytes.h"
#include "io/lossy_plan.h"
#include "io/scratch_file.h"
#include "common/parallel.h"
#include "io/json.h"

namespace ckz {
namespace {

namespace fs = std::filesystem;

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Status MakeDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status(ErrorCode::kIoError, path + ": cannot create folder: " + ec.message());
  return Status::Ok();
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Where prolog byte `prolog_offset` of `file` lands in the rebuilt file: after every tensor
// whose split is <= it.
uint64_t RestoredOffset(const Archive& a, const SourceFileInfo& file, uint64_t prolog_offset) {
  uint64_t out = prolog_offset;
  for (size_t i = 0; i < file.tensors.size(); ++i)
    if ((file.splits.empty() ? file.prolog.size() : file.splits[i]) <= prolog_offset)
      out += a.tensors[file.tensors[i]].byte_length;
  return out;
}

// Streams a source file (spec 8) into a new temporary file: its prolog pieces and its tensors'
// decoded bytes interleaved by `splits`, then the zip CRC-32 of patched tensors written over
// their places. The caller commits the file (or drops it, which removes it).
Result<std::unique_ptr<AtomicFileSink>> WriteUncommitted(ChainReader& reader,
                                                        const SourceFileInfo& file,
                                                        const std::string& path,
                                                        const RestoreOptions& options,
                                                        uint64_t* done) {
  auto sink = AtomicFileSink::Create(path, options.overwrite);
  if (!sink.ok()) return sink.status();
  const Archive& a = reader.archive();
  std::vector<bool> needs_crc(file.tensors.size(), false);
  for (const Crc32Patch& p : file.crc32_patches) needs_crc[p.tensor] = true;
  std::vector<uint32_t> crcs(file.tensors.size(), 0);

  // Each tensor's bytes follow the prolog up to its split.
  const uint64_t window = uint64_t{16} << 20;
  uint64_t prolog_pos = 0;
  CKZ_RETURN_IF_ERROR(StreamTensors(
      reader, file.tensors, window, options.threads,
      [&](size_t i, uint64_t offset, ByteSpan bytes) -> Status {
        if (offset == 0) {
          const uint64_t split = file.splits.empty() ? file.prolog.size() : file.splits[i];
          CKZ_RETURN_IF_ERROR((*sink)->Write(
              ByteSpan(file.prolog.data() + prolog_pos, size_t(split - prolog_pos))));
          prolog_pos = split;
        }
        CKZ_RETURN_IF_ERROR((*sink)->Write(bytes));
        if (needs_crc[i]) crcs[i] = ZipCrc32(bytes, crcs[i]);
        *done += bytes.size;
        if (options.progress) options.progress(*done);
        return Status::Ok();
      }));
  CKZ_RETURN_IF_ERROR((*sink)->Write(
      ByteSpan(file.prolog.data() + prolog_pos, size_t(file.prolog.size() - prolog_pos))));

  for (const Crc32Patch& p : file.crc32_patches) {
    uint8_t le[4];
    StoreLE32(le, crcs[p.tensor]);
    CKZ_RETURN_IF_ERROR((*sink)->WriteAt(RestoredOffset(a, file, p.prolog_offset), ByteSpan(le, 4)));
  }
  return sink;
}

Status WriteSourceFile(ChainReader& reader, const SourceFileInfo& file, const std::string& path,
                       const RestoreOptions& options, uint64_t* done) {
  auto sink = WriteUncommitted(reader, file, path, options, done);
  if (!sink.ok()) return sink.status();
  return (*sink)->Commit();
}

}  // namespace

LinkInfo LinkTo(const ChainReader& parent) {
  const Archive& a = parent.archive();
  LinkInfo link;
  link.parent_content_id = a.content_id;
  link.parent_step = a.step;
  link.path_hint = BaseName(parent.path());
  link.depth = (a.link ? a.link->depth : 0) + 1;
  return link;
}

DecodedCheckpoint::DecodedCheckpoint() = default;
DecodedCheckpoint::~DecodedCheckpoint() = default;
DecodedCheckpoint::DecodedCheckpoint(DecodedCheckpoint&&) noexcept = default;
DecodedCheckpoint& DecodedCheckpoint::operator=(DecodedCheckpoint&&) noexcept = default;

void DecodedCheckpoint::SpillOver(uint64_t memory_bytes, std::string dir) {
  budget_ = memory_bytes;
  spill_dir_ = std::move(dir);
}

Result<std::optional<uint64_t>> DecodedCheckpoint::Keep(ByteSpan data) {
  if (data.empty() || held_ + data.size <= budget_) {
    held_ += data.size;
    return std::optional<uint64_t>();
  }
  if (!spill_) {
    auto file = ScratchFile::Create(spill_dir_);
    if (!file.ok()) return file.status();
    spill_ = std::move(file).value();
  }
  const uint64_t at = spill_->Reserve(data.size);
  CKZ_RETURN_IF_ERROR(spill_->Write(at, data));
  return std::optional<uint64_t>(at);
}

void DecodedCheckpoint::AddView(const TensorSpec& spec, ByteSpan bytes) {
  Entry& e = tensors_[spec.name];
  e = Entry{};
  e.spec = spec;
  e.bytes = bytes;
  e.byte_length = bytes.size;
}

Status DecodedCheckpoint::AddOwned(const TensorSpec& spec, std::vector<uint8_t> bytes,
                                   ByteSpan indices, uint32_t centres, bool levels) {
  Entry& e = tensors_[spec.name];
  e = Entry{};
  e.spec = spec;
  e.byte_length = bytes.size();
  auto at = Keep(ByteSpan(bytes));
  if (!at.ok()) return at.status();
  e.bytes_spilled = at->has_value();
  if (e.bytes_spilled) {
    e.bytes_at = **at;
  } else {
    e.owned = std::move(bytes);
    e.bytes = ByteSpan(e.owned);
  }
  return SetIndices(spec.name, indices, centres, levels);
}

Status DecodedCheckpoint::SetIndices(const std::string& name, ByteSpan indices, uint32_t centres,
                                     bool levels) {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return Status::Ok();
  Entry& e = it->second;
  e.indices_length = indices.size;
  e.centres = indices.empty() ? 0 : centres;
  e.levels = levels;
  // Levels arrive as 4 bytes each, in memory order (the caller's i32 array or a copy of one).
  const int32_t* level_data = reinterpret_cast<const int32_t*>(indices.data);
  e.level_width = levels ? LevelWidth(level_data, indices.size / 4) : 4;
  std::vector<uint8_t> narrow;
  if (levels && e.level_width < 4) {
    narrow.resize(indices.size / 4 * e.level_width);
    NarrowLevels(level_data, indices.size / 4, e.level_width, narrow.data());
    indices = ByteSpan(narrow);
  }
  auto at = Keep(indices);
  if (!at.ok()) return at.status();
  e.indices_spilled = at->has_value();
  if (e.indices_spilled)
    e.indices_at = **at;
  else if (!narrow.empty())
    e.indices = std::move(narrow);
  else
    e.indices.assign(indices.begin(), indices.end());
  return Status::Ok();
}

Status DecodedCheckpoint::ReadReferenceIndices(const TensorInfo& tensor, uint64_t first,
                                               MutableByteSpan out, uint32_t* centres) {
  *centres = 0;
  auto it = tensors_.find(tensor.name);
  if (it == tensors_.end()) return Status::Ok();
  const Entry& e = it->second;
  if (e.indices_released)
    return Status(ErrorCode::kInvalidArgument,
                  "the indices of reference tensor '" + tensor.name + "' were released");
  // Indices only to a codebook tensor, levels only to a level tensor (spec 7.9.3).
  const bool levels = tensor.quantization && tensor.quantization->IsLevels();
  if (e.spec.dtype != tensor.dtype || e.spec.shape != tensor.shape || e.centres == 0 ||
      e.levels != levels)
    return Status::Ok();
  const uint64_t sb = levels ? 4 : 1;
  if (first > e.indices_length / sb || out.size > e.indices_length - first * sb)
    return Status(ErrorCode::kInvalidArgument, "reference index range outside the tensor");
  // Levels are held `level_width` bytes each: read them into the end of `out`, then widen.
  const uint64_t held = levels ? e.level_width : 1;
  const uint64_t count = out.size / sb;
  MutableByteSpan narrow(out.data + count * (sb - held), count * held);
  if (e.indices_spilled)
    CKZ_RETURN_IF_ERROR(spill_->Read(e.indices_at + first * held, narrow));
  else if (narrow.size > 0)
    std::memcpy(narrow.data, e.indices.data() + first * held, narrow.size);
  if (levels && held < 4) WidenLevelsInPlace(out.data, count, uint32_t(held));
  *centres = e.centres;
  return Status::Ok();
}

void DecodedCheckpoint::KeepAlive(InputCheckpoint input) { kept_.push_back(std::move(input)); }

void DecodedCheckpoint::AddFile(SourceFileInfo file) { files_.push_back(std::move(file)); }

const std::vector<SourceFileInfo>* DecodedCheckpoint::ReferenceFiles() { return &files_; }

void DecodedCheckpoint::ReleaseMemory() {
  for (const InputCheckpoint& in : kept_)
    for (const MappedFile& m : in.mappings) m.ReleasePages();
}

void DecodedCheckpoint::ReleaseIndices(const TensorInfo& tensor) {
  auto it = tensors_.find(tensor.name);
  if (it == tensors_.end() || it->second.indices_released) return;
  Entry& e = it->second;
  if (!e.indices_spilled) held_ -= std::min<uint64_t>(held_, e.indices.size());
  std::vector<uint8_t>().swap(e.indices);  // a spilled copy stays in the file, unread
  e.indices_released = true;
}

std::optional<ByteSpan> DecodedCheckpoint::ReferenceView(const TensorInfo& tensor) {
  auto it = tensors_.find(tensor.name);
  if (it == tensors_.end() || it->second.spec.dtype != tensor.dtype ||
      it->second.spec.shape != tensor.shape || it->second.bytes_spilled)
    return std::nullopt;
  return it->second.bytes;
}

Status DecodedCheckpoint::ReadReference(const TensorInfo& tensor, uint64_t offset,
                                        MutableByteSpan out) {
  auto it = tensors_.find(tensor.name);
  if (it == tensors_.end())
    return Status(ErrorCode::kReferenceMismatch, "reference has no tensor '" + tensor.name + "'");
  const Entry& e = it->second;
  if (e.spec.dtype != tensor.dtype || e.spec.shape != tensor.shape)
    return Status(ErrorCode::kReferenceMismatch,
                  "reference tensor '" + tensor.name + "' has another dtype or shape");
  if (offset > e.byte_length || out.size > e.byte_length - offset)
    return Status(ErrorCode::kInvalidArgument, "reference range outside the tensor");
  if (e.bytes_spilled) return spill_->Read(e.bytes_at + offset, out);
  if (out.size > 0) std::memcpy(out.data, e.bytes.data + offset, out.size);
  return Status::Ok();
}

std::optional<uint32_t> MatchingParentFile(const SourceFileInfo& file, size_t index,
                                           const std::vector<SourceFileInfo>& parent_files) {
  for (size_t j = 0; j < parent_files.size(); ++j)
    if (parent_files[j].path == file.path) return uint32_t(j);
  if (index < parent_files.size() && parent_files[index].format == file.format)
    return uint32_t(index);
  for (size_t j = 0; j < parent_files.size(); ++j)
    if (parent_files[j].format == file.format) return uint32_t(j);
  return std::nullopt;
}

namespace {

// The plans of a link's tensors while it is written: every tensor's decision (kind, step,
// codebook, reason) stays; the index or level arrays stay only until the last tensor of their
// group is written (moments read their weight's as contexts), in memory up to a budget and in
// a temporary file beyond it, so memory never holds more than a batch's worth of them.
class PlanStore {
 public:
  explicit PlanStore(size_t tensors) : plans_(tensors), at_(tensors, 0), spilled_(tensors, 0) {}
  ShrinkResult& plan(size_t t) { return plans_[t]; }
  const ShrinkResult* ptr(size_t t) const { return &plans_[t]; }

  static uint64_t ArrayBytes(const ShrinkResult& p) {
    return p.levels.size() * 4 + p.indices.size();
  }
  // Brings tensor t's arrays back into memory.
  Status Load(size_t t) {
    if (!spilled_[t]) return Status::Ok();
    ShrinkResult& p = plans_[t];
    const uint64_t n = length_[t];
    if (p.quant.IsLevels()) {
      p.levels.resize(size_t(n / 4));
      CKZ_RETURN_IF_ERROR(
          file_->Read(at_[t], MutableByteSpan(reinterpret_cast<uint8_t*>(p.levels.data()), n)));
    } else {
      p.indices.resize(size_t(n));
      CKZ_RETURN_IF_ERROR(file_->Read(at_[t], MutableByteSpan(p.indices)));
    }
    spilled_[t] = 0;
    file_->Discard(at_[t], n);
    return Status::Ok();
  }
  // Elements' symbols of tensor t (1 byte per index, 4 per level) from `first`, in memory or
  // spilled. Safe from several threads while nothing is loaded or spilled.
  Status ReadPart(size_t t, uint64_t first, MutableByteSpan out) const {
    const ShrinkResult& p = plans_[t];
    const uint64_t sb = p.quant.IsLevels() ? 4 : 1;
    if (spilled_[t]) return file_->Read(at_[t] + first * sb, out);
    const uint8_t* base = sb == 4 ? reinterpret_cast<const uint8_t*>(p.levels.data()) : p.indices.data();
    std::memcpy(out.data, base + first * sb, out.size);
    return Status::Ok();
  }
  // Moves tensor t's arrays to the temporary file.
  Status Spill(size_t t) {
    ShrinkResult& p = plans_[t];
    const uint64_t n = ArrayBytes(p);
    if (spilled_[t] || n == 0) return Status::Ok();
    if (!file_) {
      auto f = ScratchFile::Create();
      if (!f.ok()) return f.status();
      file_ = std::move(f).value();
    }
    if (length_.empty()) length_.assign(plans_.size(), 0);
    at_[t] = file_->Reserve(n);
    length_[t] = n;
    const ByteSpan bytes = p.quant.IsLevels()
                               ? ByteSpan(reinterpret_cast<const uint8_t*>(p.levels.data()), n)
                               : ByteSpan(p.indices);
    CKZ_RETURN_IF_ERROR(file_->Write(at_[t], bytes));
    std::vector<int32_t>().swap(p.levels);
    std::vector<uint8_t>().swap(p.indices);
    spilled_[t] = 1;
    return Status::Ok();
  }
  void Drop(size_t t) {
    std::vector<int32_t>().swap(plans_[t].levels);
    std::vector<uint8_t>().swap(plans_[t].indices);
    if (spilled_[t]) file_->Discard(at_[t], length_[t]);
    spilled_[t] = 0;
  }
  bool resident(size_t t) const { return !spilled_[t]; }

 private:
  std::vector<ShrinkResult> plans_;
  std::vector<uint64_t> at_, length_;
  std::vector<char> spilled_;
  std::unique_ptr<ScratchFile> file_;
};

TensorInfo InfoOf(const TensorSpec& spec, const std::optional<QuantizationInfo>& quant = {}) {
  TensorInfo info;
  info.name = spec.name;
  info.dtype = spec.dtype;
  info.shape = spec.shape;
  info.quantization = quant;
  return info;
}

}  // namespace

Status WriteCheckpoint(const InputCheckpoint& input, ReferenceSource* reference, Writer* writer,
                       const WriteOptions& options, DecodedCheckpoint* decoded,
                       WriteReport* report) {
  WriteReport local_report;
  if (!report) report = &local_report;
  if (input.step) writer->SetStep(*input.step);
  for (const MetaEntry& e : input.metadata) writer->AddMetadata(e);
  const std::vector<SourceFileInfo>* parent_files = reference ? reference->ReferenceFiles()
                                                              : nullptr;
  for (size_t i = 0; i < input.files.size(); ++i) {
    const SourceFileInfo& f = input.files[i];
    const std::optional<uint32_t> match =
        parent_files ? MatchingParentFile(f, i, *parent_files) : std::nullopt;
    if (match)
      writer->AddSourceFile(f, ByteSpan((*parent_files)[*match].prolog), *match);
    else
      writer->AddSourceFile(f);
    if (decoded) {
      SourceFileInfo as_written = f;
      ClearCrc32PatchBytes(&as_written);
      decoded->AddFile(std::move(as_written));
    }
  }

  const std::vector<InputTensor>& tensors = input.tensors;
  const size_t n = tensors.size();
  std::optional<LinkPlanner> planner;
  if (options.excp && reference) {
    const ExcpOptions& e = *options.excp;
    writer->AddMetadata({"excp.alpha", e.alpha});
    writer->AddMetadata({"excp.beta", e.beta});
    writer->AddMetadata({"excp.bits", int64_t(e.bits)});
    if (e.fallback_k) writer->AddMetadata({"excp.fallback_k", *e.fallback_k});
    if (e.k_at_cap) writer->AddMetadata({"excp.k_at_cap", true});
    writer->AddMetadata({"excp.v_residual", e.v_residual});
    planner.emplace(input, reference, options, writer->options());
  } else if (options.rd && reference) {
    const RdOptions& rd = *options.rd;
    writer->AddMetadata({"rd.strength", rd.strength});
    writer->AddMetadata({"rd.weight_step", rd.weight_step});
    writer->AddMetadata({"rd.moment1_step", rd.moment1_step});
    writer->AddMetadata({"rd.moment2_step", rd.moment2_step});
    writer->AddMetadata({"rd.rdoq_lambda", rd.rdoq_lambda});
    if (rd.weights_only_step) writer->AddMetadata({"rd.weights_only_step", *rd.weights_only_step});
    planner.emplace(input, reference, options, writer->options());
  }
  // (0.10) Only rate-distortion links have level tensors; the writer sets feature bit 9.
  const bool moment_context = options.moment_context && options.rd && !options.excp && reference;
  if (moment_context) writer->SetMomentContext(true);
  PlanStore store(planner ? n : 0);
  std::vector<char> planned(n, 0), written(n, 0);
  // The cm / cml aux contexts (spec 7.7.2, 7.9.3), as a decoder derives them from the file:
  // a tensor's flags are set when it is planned, before any tensor of its group is written.
  std::vector<CmTensorRole> roles(n);
  for (size_t i = 0; i < n; ++i) roles[i] = {tensors[i].spec.role, tensors[i].spec.owner, false, false};
  // (0.10) Each weight's Moment1, whose levels in the parent are the weight's aux levels
  // (roles and owners are fixed: found once), and for each such Moment1 its weight.
  std::vector<int> moment_of(n, -1), weight_of(n, -1);
  if (moment_context)
    for (size_t i = 0; i < n; ++i)
      if ((moment_of[i] = WeightMoment1(roles, i)) >= 0) weight_of[size_t(moment_of[i])] = int(i);
  // Tensors of each group not yet written: its arrays go when the count reaches 0.
  std::vector<size_t> unwritten(n, 0);
  if (planner)
    for (size_t i = 0; i < n; ++i) ++unwritten[planner->groups().OwnerOf(i)];

  // Plans tensor t and, first, the members of its group before it (their arrays are loaded
  // when t's plan reads them).
  auto plan_up_to = [&](size_t t) -> Status {
    const size_t w = planner->groups().OwnerOf(t);
    for (size_t k : planner->groups().Members(w)) {
      if (!planned[k]) {
        EarlierPlans earlier;
        if (k != w) {
          earlier.owner = store.ptr(w);
          if (planner->NeedsOwnerArrays(k)) CKZ_RETURN_IF_ERROR(store.Load(w));
          const int m1 = planner->groups().moment1[w];
          if (m1 >= 0 && size_t(m1) != k) {
            earlier.moment1 = store.ptr(size_t(m1));
            if (planner->NeedsMoment1Arrays(k)) CKZ_RETURN_IF_ERROR(store.Load(size_t(m1)));
          }
        }
        CKZ_RETURN_IF_ERROR(planner->Plan(k, earlier, &store.plan(k)));
        const ShrinkResult& p = store.plan(k);
        roles[k].quantized = p.quantized;
        roles[k].levels = p.quantized && p.quant.IsLevels();
        planned[k] = 1;
      }
      if (k == t) break;
    }
    return Status::Ok();
  };

  // Tensors go to the writer in batches of about options.batch_bytes, so that the chunks of
  // many small tensors encode in parallel; the buffers the writer reads stay alive until each
  // batch ends.
  struct Kept {
    size_t tensor = 0;
    bool quantized = false;
    std::vector<uint8_t> ref_storage, out;
  };
  std::deque<Kept> batch;
  uint64_t batch_bytes = 0;
  size_t begin = 0;  // the batch's first tensor

  // A lossy tensor's reference and contexts, fetched chunk by chunk as the writer encodes.
  auto contexts_of = [&](size_t i) -> Result<ChunkContexts> {
    const InputTensor& t = tensors[i];
    const ShrinkResult& p = store.plan(i);
    const QuantizationInfo& q = p.quant;
    const size_t width = DTypeSize(t.spec.dtype);
    ChunkContexts c;
    const TensorInfo me = InfoOf(t.spec, q);
    if ((q.IsLevels() && q.NeedsReference()) || q.kind == QuantKind::kResidual)
      c.reference = [reference, me, width](uint64_t first, MutableByteSpan out) {
        return reference->ReadReference(me, first * width, out);
      };
    uint32_t centres = 0;  // the parent's indices (levels) exist: an empty read says so
    CKZ_RETURN_IF_ERROR(reference->ReadReferenceIndices(me, 0, MutableByteSpan(), &centres));
    if (centres != 0) {
      c.parent = [reference, me](uint64_t first, MutableByteSpan out) {
        uint32_t ignored = 0;
        return reference->ReadReferenceIndices(me, first, out, &ignored);
      };
      c.parent_centres = centres;
    }
    const int aux = CmAuxTensor(roles, i);
    if (aux >= 0) {
      c.aux = [&store, aux](uint64_t first, MutableByteSpan out) {
        return store.ReadPart(size_t(aux), first, out);
      };
      c.aux_centres = uint32_t(store.plan(size_t(aux)).quant.codebook.size());
    } else if (moment_context && q.IsLevels()) {
      // (0.10, spec 7.9.3) A weight's aux levels: its Moment1's levels in the parent.
      const int m = moment_of[i];
      if (m >= 0) {
        const TensorInfo probe = ParentMomentProbe(InfoOf(tensors[size_t(m)].spec), me);
        uint32_t present = 0;
        CKZ_RETURN_IF_ERROR(reference->ReadReferenceIndices(probe, 0, MutableByteSpan(), &present));
        if (present != 0)
          c.aux = [reference, probe](uint64_t first, MutableByteSpan out) {
            uint32_t ignored = 0;
            return reference->ReadReferenceIndices(probe, first, out, &ignored);
          };
      }
    }
    if (q.IsLevels() && q.step_source >= 0) {
      const TensorSpec& s = tensors[size_t(q.step_source)].spec;
      const TensorInfo source = InfoOf(s);
      const size_t sw = DTypeSize(s.dtype);
      c.step_source_dtype = s.dtype;
      c.step_source = [reference, source, sw](uint64_t first, MutableByteSpan out) {
        return reference->ReadReference(source, first * sw, out);
      };
    }
    return c;
  };

  auto end_batch = [&]() -> Status {
    CKZ_RETURN_IF_ERROR(writer->EndBatch());
    for (Kept& k : batch) {
      const size_t i = k.tensor;
      const InputTensor& t = tensors[i];
      if (decoded && !k.quantized) decoded->AddView(t.spec, t.data);
      if (!planner) continue;
      const size_t w = planner->groups().OwnerOf(i);
      const bool group_done = --unwritten[w] == 0;
      if (decoded && k.quantized) {
        const ShrinkResult& p = store.plan(i);
        const bool levels = p.quant.IsLevels();
        const ByteSpan symbols =
            levels ? ByteSpan(reinterpret_cast<const uint8_t*>(p.levels.data()), p.levels.size() * 4)
                   : ByteSpan(p.indices);
        const uint32_t centres = levels ? 1 : uint32_t(p.quant.codebook.size());
        if (options.decode_into_input) {
          decoded->AddView(t.spec, t.data);
          CKZ_RETURN_IF_ERROR(decoded->SetIndices(t.spec.name, symbols, centres, levels));
        } else {
          CKZ_RETURN_IF_ERROR(decoded->AddOwned(t.spec, std::move(k.out), symbols, centres, levels));
        }
      }
      if (group_done)
        for (size_t m : planner->groups().Members(w)) store.Drop(m);
    }
    // The parent's indices of the tensors just written are read by nothing else (a tensor's
    // contexts read its own, and a weight's its Moment1's: that one goes once both are
    // written): a link's indices replace its parent's.
    if (reference && options.release_reference_indices)
      for (const Kept& k : batch) {
        const size_t i = k.tensor;
        written[i] = 1;
        const int m = moment_of[i], w = weight_of[i];
        if (w < 0 || written[size_t(w)]) reference->ReleaseIndices(InfoOf(tensors[i].spec));
        if (m >= 0 && written[size_t(m)]) reference->ReleaseIndices(InfoOf(tensors[size_t(m)].spec));
      }
    batch.clear();
    batch_bytes = 0;
    if (planner) {
      // Arrays still needed by later tensors: in memory up to a budget, the rest on disk.
      uint64_t resident = 0;
      for (size_t i = 0; i < n; ++i)
        if (planned[i] && store.resident(i)) {
          resident += PlanStore::ArrayBytes(store.plan(i));
          if (resident > options.kept_plan_bytes) CKZ_RETURN_IF_ERROR(store.Spill(i));
        }
    }
    // The input and reference pages this batch read: they stay in the page cache.
    for (const MappedFile& m : input.mappings) m.ReleasePages();
    if (reference) reference->ReleaseMemory();
    return Status::Ok();
  };

  // Plans the batch's tensors [first, last): groups in parallel, each group in order.
  auto plan_batch = [&](size_t first, size_t last) -> Status {
    if (!planner) return Status::Ok();
    std::vector<size_t> jobs;  // one tensor per group: its group up to it is planned
    std::vector<size_t> latest(n, SIZE_MAX);
    for (size_t i = first; i < last; ++i) {
      if (planned[i]) continue;
      const size_t w = planner->groups().OwnerOf(i);
      if (latest[w] == SIZE_MAX) jobs.push_back(w);
      // The member furthest along the group's order.
      const std::vector<size_t> members = planner->groups().Members(w);
      auto pos = [&](size_t k) { return std::find(members.begin(), members.end(), k) - members.begin(); };
      if (latest[w] == SIZE_MAX || pos(i) > pos(latest[w])) latest[w] = i;
    }
    std::vector<Status> results(jobs.size());
    ParallelFor(jobs.size(), writer->options().threads,
                [&](size_t j, int) { results[j] = plan_up_to(latest[jobs[j]]); });
    for (const Status& s : results) CKZ_RETURN_IF_ERROR(s);
    for (size_t i = first; i < last; ++i) CKZ_RETURN_IF_ERROR(store.Load(i));
    return Status::Ok();
  };

  // Where a shrunk tensor's decoded values go. Only `decoded` reads its input bytes after
  // planning, so with decode_into_input the writer may fill them with the decoded values.
  auto decoded_bytes = [&](Kept& k, const InputTensor& t) {
    if (decoded && options.decode_into_input)
      return MutableByteSpan(const_cast<uint8_t*>(t.data.data), t.data.size);
    k.out.resize(t.data.size);
    return MutableByteSpan(k.out);
  };

  // Adds tensors [first, last) as one batch.
  auto add_batch = [&](size_t first, size_t last) -> Status {
    CKZ_RETURN_IF_ERROR(plan_batch(first, last));
    writer->BeginBatch();
    for (size_t i = first; i < last; ++i) {
      const InputTensor& t = tensors[i];
      Kept& k = batch.emplace_back();
      k.tensor = i;
      const ShrinkResult* p = planner ? &store.plan(i) : nullptr;
      if (p && p->quantized) {
        auto contexts = contexts_of(i);
        if (!contexts.ok()) return contexts.status();
        k.quantized = true;
        if (p->quant.IsLevels())
          CKZ_RETURN_IF_ERROR(writer->AddLevelTensorChunked(t.spec, p->quant, p->levels.data(),
                                                            decoded_bytes(k, t), *contexts));
        else
          CKZ_RETURN_IF_ERROR(writer->AddQuantizedTensorChunked(
              t.spec, p->quant, ByteSpan(p->indices), decoded_bytes(k, t), *contexts));
        ++report->quantized;
      } else {
        ByteSpan ref;
        CKZ_RETURN_IF_ERROR(ReferenceBytes(reference, t.spec, t.data.size, &k.ref_storage, &ref));
        CKZ_RETURN_IF_ERROR(writer->AddTensor(t.spec, t.data, ref));
      }
    }
    return end_batch();
  };

  auto add_all = [&]() -> Status {
    for (size_t i = 0; i < n; ++i) {
      const uint64_t size = tensors[i].data.size;
      if (batch_bytes > 0 && batch_bytes + size > options.batch_bytes) {
        CKZ_RETURN_IF_ERROR(add_batch(begin, i));
        begin = i;
      }
      batch_bytes += size;
    }
    if (begin < n) CKZ_RETURN_IF_ERROR(add_batch(begin, n));
    if (planner) {
      std::vector<const ShrinkResult*> plans(n);
      for (size_t i = 0; i < n; ++i) plans[i] = store.ptr(i);
      planner->Report(plans, report);
    }
    return Status::Ok();
  };
  // A failure leaves queued tensors whose buffers are about to go: drop them (the writer then
  // refuses to finish, as after any failure).
  Status s = add_all();
  if (!s.ok()) writer->AbortBatch(s);
  return s;
}

namespace {

// What a .pt's pickle held besides its named tensors (kTorchPickleMetadataKey), as recorded.
struct PickleDescription {
  std::vector<std::pair<std::string, std::string>> tied;  // other name -> stored tensor
  std::vector<std::string> views, objects;
  uint64_t tied_total = 0, views_total = 0;
};

PickleDescription DescribePickle(const Archive& a) {
  PickleDescription d;
  const MetaEntry* e = a.FindMetadata(kTorchPickleMetadataKey);
  const std::string* text = e ? std::get_if<std::string>(&e->value) : nullptr;
  if (!text) return d;
  Result<JsonValue> json = ParseJson(ByteSpan(reinterpret_cast<const uint8_t*>(text->data()), text->size()));
  if (!json.ok() || !json->is_object()) return d;  // informative only: a damaged one is ignored
  if (const JsonValue* tied = json->Find("tied"); tied && tied->is_object())
    for (const JsonMember& m : tied->members())
      if (m.value.is_string()) d.tied.emplace_back(m.key, m.value.string_value());
  for (const char* key : {"views", "objects"})
    if (const JsonValue* list = json->Find(key); list && list->is_array())
      for (const JsonValue& v : list->items())
        if (v.is_string()) (key[0] == 'v' ? d.views : d.objects).push_back(v.string_value());
  const JsonValue* tt = json->Find("tied_total");
  const JsonValue* vt = json->Find("views_total");
  d.tied_total = tt && tt->AsUint64() ? *tt->AsUint64() : d.tied.size();
  d.views_total = vt && vt->AsUint64() ? *vt->AsUint64() : d.views.size();
  return d;
}

std::string Listed(const std::vector<std::string>& items, uint64_t total) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < 8; ++i) s += (i ? ", " : "") + items[i];
  if (total > std::min<uint64_t>(items.size(), 8)) s += ", ...";
  return s;
}

// A bare tensor set is written as safetensors, tensors in file order. A conversion from a .pt
// names its tied tensors in the metadata (safetensors' convention: other name -> stored name)
// and says what it could not carry.
Status WriteBareTensorSet(ChainReader& reader, const std::string& path,
                          const RestoreOptions& options, uint64_t* done) {
  const Archive& a = reader.archive();
  std::vector<SafetensorsEntry> entries;
  std::vector<uint32_t> order;
  for (uint32_t t = 0; t < a.tensors.size(); ++t) {
    entries.push_back({a.tensors[t].name, a.tensors[t].dtype, a.tensors[t].shape, 0, 0});
    order.push_back(t);
  }
  std::vector<std::pair<std::string, std::string>> metadata;
  for (const MetaEntry& e : a.metadata)
    if (const auto* s = std::get_if<std::string>(&e.value); s && e.key != kTorchPickleMetadataKey)
      metadata.emplace_back(e.key, *s);
  const PickleDescription pickle = DescribePickle(a);
  if (pickle.tied_total > pickle.tied.size())
    return Status(ErrorCode::kUnsupported,
                  "the checkpoint has " + std::to_string(pickle.tied_total) + " tied tensor names; "
                  "only the first " + std::to_string(pickle.tied.size()) + " were recorded, so a "
                  "safetensors file could not name them all");
  for (const auto& [alias, stored] : pickle.tied) metadata.emplace_back(alias, stored);
  auto say = [&](const std::string& what) {
    if (options.note) options.note(path + ": " + what);
  };
  if (!a.files.empty() && a.files[0].format == SourceFormat::kTorchZip) {
    std::string rest = "not carried: the rest of " + a.files[0].path +
                       "'s pickle (its non-tensor values and the structure around the tensors";
    if (!pickle.objects.empty())
      rest += "; Python objects: " + Listed(pickle.objects, pickle.objects.size());
    say(rest + ")");
  }
  if (!pickle.tied.empty())
    say(std::to_string(pickle.tied.size()) + " tied tensor name(s) stored once, named in the "
        "metadata as safetensors' save_model does (" +
        pickle.tied[0].first + " -> " + pickle.tied[0].second +
        (pickle.tied.size() > 1 ? ", ..." : "") + ")");
  if (pickle.views_total > 0)
    say("not carried: " + std::to_string(pickle.views_total) +
        " view(s) into stored tensors (" + Listed(pickle.views, pickle.views_total) + ")");
  SourceFileInfo file;
  file.format = SourceFormat::kSafetensors;
  file.prolog = BuildSafetensorsProlog(entries, metadata);
  file.tensors = std::move(order);
  return WriteSourceFile(reader, file, path, options, done);
}

// The whole checkpoint as one file of `format` (safetensors, or a torch.load-able state_dict).
Status WriteConverted(ChainReader& reader, const std::string& path, SourceFormat format,
                      const RestoreOptions& options) {
  const Archive& a = reader.archive();
  if (a.files.size() > 1)
    return Status(ErrorCode::kUnsupported,
                  "the checkpoint has " + std::to_string(a.files.size()) +
                      " files; converting it into one file would drop all but its tensors");
  uint64_t done = 0;
  if (format == SourceFormat::kSafetensors) return WriteBareTensorSet(reader, path, options, &done);
  if (format != SourceFormat::kTorchZip)
    return Status(ErrorCode::kInvalidArgument, "can only convert to safetensors or torch files");
  std::vector<TorchTensorSpec> specs;
  std::vector<uint32_t> indices;
  for (uint32_t t = 0; t < a.tensors.size(); ++t) {
    specs.push_back({a.tensors[t].name, a.tensors[t].dtype, a.tensors[t].shape});
    indices.push_back(t);
  }
  // torch.save names the archive folder after the file (PyTorch 1.13) or "archive" (later).
  std::string archive = fs::path(path).stem().string();
  for (char& c : archive)
    if (!isalnum(uint8_t(c)) && c != '_' && c != '-' && c != '.') c = '_';
  if (archive.empty()) archive = "archive";
  auto layout = BuildTorchStateDictLayout(fs::path(path).filename().string(), archive, specs, indices);
  if (!layout.ok()) return layout.status();
  return WriteSourceFile(reader, *layout, path, options, &done);
}

// Writes every file of the checkpoint under `dir`. All files are decoded into temporaries
// first and renamed into place only when every one succeeded: a failure leaves none of them.
Status WriteFilesUnder(ChainReader& reader, const std::string& dir, const std::string& bare_name,
                       const RestoreOptions& options, uint64_t* done) {
  const Archive& a = reader.archive();
  CKZ_RETURN_IF_ERROR(MakeDirs(dir));
  if (a.files.empty()) return WriteBareTensorSet(reader, dir + "/" + bare_name, options, done);
  // Spec 8: distinct paths may still clash as files (one a folder of another). Refuse before
  // writing anything, so no file appears.
  for (const SourceFileInfo& f : a.files)
    for (const SourceFileInfo& g : a.files)
      if (g.path.size() > f.path.size() && g.path.compare(0, f.path.size(), f.path) == 0 &&
          g.path[f.path.size()] == '/')
        return Status(ErrorCode::kIoError, "cannot restore both '" + f.path + "' and '" + g.path +
                                               "': the first would have to be a folder");
  std::vector<std::unique_ptr<AtomicFileSink>> pending;
  for (const SourceFileInfo& f : a.files) {
    const std::string path = dir + "/" + f.path;
    CKZ_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/'))));
    auto sink = WriteUncommitted(reader, f, path, options, done);
    if (!sink.ok()) return sink.status();
    pending.push_back(std::move(sink).value());
  }
  // All or nothing: if one file cannot be put in place, remove those this call created.
  std::vector<std::string> created;
  for (size_t i = 0; i < pending.size(); ++i) {
    const std::string path = dir + "/" + a.files[i].path;
    const bool existed = Exists(path);
    Status s = pending[i]->Commit();
    if (!s.ok()) {
      for (const std::string& c : created) unlink(c.c_str());
      return s;
    }
    if (!existed) created.push_back(path);
  }
  return Status::Ok();
}

}  // namespace

Status RestoreFilesInto(ChainReader& reader, const std::string& dir, const std::string& bare_name,
                        const RestoreOptions& options) {
  uint64_t done = 0;
  return WriteFilesUnder(reader, dir, bare_name, options, &done);
}

uint64_t RestoredFileSize(const ChainReader& reader, size_t file) {
  const Archive& a = reader.archive();
  const SourceFileInfo& f = a.files.at(file);
  uint64_t size = f.prolog.size();
  for (uint32_t t : f.tensors) size += a.tensors[t].byte_length;
  return size;
}

std::vector<uint64_t> RestoredTensorOffsets(const ChainReader& reader, size_t file) {
  const Archive& a = reader.archive();
  const SourceFileInfo& f = a.files.at(file);
  std::vector<uint64_t> offsets;
  uint64_t before = 0;  // tensor bytes before the i-th tensor
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    offsets.push_back((f.splits.empty() ? f.prolog.size() : f.splits[i]) + before);
    before += a.tensors[f.tensors[i]].byte_length;
  }
  return offsets;
}

Status RestoreProlog(const ChainReader& reader, size_t file, MutableByteSpan out) {
  const Archive& a = reader.archive();
  if (file >= a.files.size())
    return Status(ErrorCode::kInvalidArgument, "source file index out of range");
  const SourceFileInfo& f = a.files[file];
  if (out.size != RestoredFileSize(reader, file))
    return Status(ErrorCode::kInvalidArgument,
                  "output buffer of " + std::to_string(out.size) + " bytes for a file of " +
                      std::to_string(RestoredFileSize(reader, file)));
  uint64_t prolog_pos = 0, pos = 0;
  for (size_t i = 0; i <= f.tensors.size(); ++i) {
    const uint64_t split =
        i == f.tensors.size() || f.splits.empty() ? f.prolog.size() : f.splits[i];
    std::memcpy(out.data + pos, f.prolog.data() + prolog_pos, size_t(split - prolog_pos));
    pos += split - prolog_pos;
    prolog_pos = split;
    if (i < f.tensors.size()) pos += a.tensors[f.tensors[i]].byte_length;
  }
  return Status::Ok();
}

Status RestoreFileToMemory(ChainReader& reader, size_t file, MutableByteSpan out, int threads,
                           bool zip_crcs) {
  CKZ_RETURN_IF_ERROR(RestoreProlog(reader, file, out));
  const Archive& a = reader.archive();
  const SourceFileInfo& f = a.files[file];
  const std::vector<uint64_t> offsets = RestoredTensorOffsets(reader, file);
  std::vector<TensorRange> ranges;
  for (size_t i = 0; i < f.tensors.size(); ++i)
    ranges.push_back({f.tensors[i], 0,
                      out.subspan(size_t(offsets[i]), size_t(a.tensors[f.tensors[i]].byte_length))});
  CKZ_RETURN_IF_ERROR(reader.ReadTensors(ranges, threads));
  if (!zip_crcs) return Status::Ok();
  std::vector<std::optional<uint32_t>> crcs(f.tensors.size());  // a tensor has 2-3 patches
  for (const Crc32Patch& p : f.crc32_patches) {
    if (!crcs[p.tensor]) crcs[p.tensor] = ZipCrc32(ranges[p.tensor].out);
    StoreLE32(out.data + RestoredOffset(a, f, p.prolog_offset), *crcs[p.tensor]);
  }
  return Status::Ok();
}

Status RestoreCheckpoint(ChainReader& reader, const std::string& out_path,
                         const RestoreOptions& options) {
  const Archive& a = reader.archive();
  uint64_t done = 0;
  if (options.convert_to) return WriteConverted(reader, out_path, *options.convert_to, options);
  if (a.files.empty()) return WriteBareTensorSet(reader, out_path, options, &done);
  if (a.files.size() == 1)
    return WriteSourceFile(reader, a.files[0], out_path, options, &done);

  // Several files: a folder. A new folder is filled under a temporary name and renamed into
  // place at the end, so it appears complete or not at all.
  std::string dir = out_path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const bool fresh = !Exists(dir);
  if (!fresh && !options.overwrite)
    return Status(ErrorCode::kIoError, dir + ": already exists (use -f to overwrite)");
  const std::string target = fresh ? dir + ".tmp-restore" : dir;
  if (fresh && Exists(target))
    return Status(ErrorCode::kIoError, target + ": left over from an interrupted restore; remove it");
  RestoreOptions file_options = options;
  file_options.overwrite = !fresh;
  Status status = WriteFilesUnder(reader, target, "", file_options, &done);
  if (!fresh) return status;
  if (status.ok() && rename(target.c_str(), dir.c_str()) != 0)
    status = Status(ErrorCode::kIoError, dir + ": cannot rename into place: " + std::strerror(errno));
  if (!status.ok()) {
    std::error_code ignored;  // the folder is ours alone: leave nothing behind
    std::filesystem::remove_all(target, ignored);
  }
  return status;
}

}  // namespace ckz
