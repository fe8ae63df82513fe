// ckz._ckz: the Python binding of the CKZ library, over its public API only (ckz/*.h). Bytes
// cross as buffers (the buffer protocol) without copies, and the GIL is released while the
// library encodes or decodes, so a save can run on a background thread while training goes on.
// The Python package `ckz` (python/ckz) builds the torch-facing API on top of this.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ckz/checkpoint.h"
#include "ckz/io.h"
#include "ckz/torch.h"
#include "ckz/writer.h"

namespace py = pybind11;

namespace ckz_python {
namespace {

using namespace ckz;

PyObject* g_error_type = nullptr;  // ckz.CkzError

// A library Status on its way to Python, where it becomes a CkzError.
struct StatusError : std::exception {
  explicit StatusError(Status s) : status(std::move(s)), text(status.ToString()) {}
  const char* what() const noexcept override { return text.c_str(); }
  Status status;
  std::string text;
};

void Check(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}

template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) throw StatusError(r.status());
  return std::move(r).value();
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// What ckz.save and Chain take as **options: the CLI's compress options, same names and
// ranges (tools/ckz/main.cc).
struct SaveOptions {
  EncodeOptions encode;
  WriteOptions write;
  uint64_t keyframe_interval = 10;
};

int64_t IntOption(const py::handle& v, const char* key, int64_t lo, int64_t hi) {
  if (!py::isinstance<py::int_>(v) || py::isinstance<py::bool_>(v))
    throw py::type_error(std::string("option '") + key + "' takes an int");
  const int64_t x = v.cast<int64_t>();
  if (x < lo || x > hi)
    throw py::value_error(std::string("option '") + key + "' must be " + std::to_string(lo) +
                          ".." + std::to_string(hi));
  return x;
}

double PositiveOption(const py::handle& v, const char* key) {
  if (!py::isinstance<py::int_>(v) && !py::isinstance<py::float_>(v))
    throw py::type_error(std::string("option '") + key + "' takes a number");
  const double x = v.cast<double>();
  if (!(x > 0) || x == INFINITY)
    throw py::value_error(std::string("option '") + key + "' must be a positive number");
  return x;
}

SaveOptions ParseSaveOptions(bool lossless, uint64_t keyframe_interval, const py::dict& options) {
  SaveOptions out;
  if (keyframe_interval < 1) throw py::value_error("keyframe_interval must be >= 1");
  out.keyframe_interval = keyframe_interval;
  ExcpOptions excp;
  RdOptions rd;
  bool shrink_option = false, rd_option = false, use_excp = false;
  for (const auto& [k, v] : options) {
    const std::string key = py::str(k);
    if (key == "threads") {
      const int64_t n = IntOption(v, "threads", 0, 1024);
      out.encode.threads = n == 0 ? int(std::max(1u, std::thread::hardware_concurrency())) : int(n);
    } else if (key == "chunk_size") {
      out.encode.chunk_bytes = uint64_t(IntOption(v, "chunk_size", 1, int64_t(kMaxChunkRawBytes)));
    } else if (key == "level") {
      out.encode.zstd_level = int(IntOption(v, "level", 1, 22));
    } else if (key == "entropy") {
      const std::string e = py::str(v);
      // As `ckz compress --entropy`: indices of lossy tensors; zstd and cm also pick the
      // coding of lossless F32 values.
      if (e == "zstd") {
        out.encode.index_codec = StreamCodec::kZstd;
        out.encode.float_codec = StreamCodec::kZstd;
      } else if (e == "packed") {
        out.encode.index_codec = StreamCodec::kPacked;
      } else if (e == "cm") {
        out.encode.index_codec = StreamCodec::kCm;
        out.encode.float_codec.reset();
      } else {
        throw py::value_error("option 'entropy' is 'zstd', 'packed' or 'cm'");
      }
    } else if (key == "excp") {
      use_excp = v.cast<bool>();
    } else if (key == "quality") {
      rd.strength = StrengthOfQuality(int(IntOption(v, "quality", 1, 9)));
      rd_option = true;
    } else if (key == "strength") {
      rd.strength = PositiveOption(v, "strength");
      rd_option = true;
    } else if (key == "rd_steps") {
      const auto steps = v.cast<std::vector<double>>();
      if (steps.size() != 3) throw py::value_error("option 'rd_steps' is three numbers (W, M, V)");
      rd.weight_step = PositiveOption(py::float_(steps[0]), "rd_steps");
      rd.moment1_step = PositiveOption(py::float_(steps[1]), "rd_steps");
      rd.moment2_step = PositiveOption(py::float_(steps[2]), "rd_steps");
      rd_option = true;
    } else if (key == "rdoq") {
      rd.rdoq_lambda = v.cast<double>();
      if (!(rd.rdoq_lambda >= 0) || !std::isfinite(rd.rdoq_lambda))
        throw py::value_error("option 'rdoq' must be a number >= 0");
      rd_option = true;
    } else if (key == "weights_step") {
      rd.weights_only_step = PositiveOption(v, "weights_step");
      rd_option = true;
    } else if (key == "fallback_k") {
      excp.fallback_k = PositiveOption(v, "fallback_k");
      shrink_option = true;
    } else if (key == "alpha") {
      excp.alpha = PositiveOption(v, "alpha");
      shrink_option = true;
    } else if (key == "beta") {
      excp.beta = PositiveOption(v, "beta");
      shrink_option = true;
    } else if (key == "bits") {
      excp.bits = unsigned(IntOption(v, "bits", 2, 8));
      shrink_option = true;
    } else if (key == "k_at_cap") {
      excp.k_at_cap = v.cast<bool>();
      shrink_option = shrink_option || excp.k_at_cap;
    } else if (key == "v_direct") {
      excp.v_residual = !v.cast<bool>();
      shrink_option = shrink_option || !excp.v_residual;
    } else {
      throw py::type_error("unexpected option '" + key +
                           "' (options: threads, chunk_size, level, entropy, quality, strength, "
                           "rd_steps, rdoq, weights_step, excp, alpha, beta, bits, k_at_cap, "
                           "v_direct, fallback_k)");
    }
  }
  // As `ckz compress`: rate-distortion levels by default, ExCP with excp=True.
  if (lossless && (shrink_option || rd_option || use_excp))
    throw py::value_error("lossy options (quality, strength, rd_steps, rdoq, weights_step, excp, "
                          "alpha, beta, bits, k_at_cap, v_direct, fallback_k) are not for "
                          "lossless=True");
  if (shrink_option && !use_excp)
    throw py::value_error("alpha, beta, bits, k_at_cap, v_direct and fallback_k are ExCP "
                          "options: add excp=True");
  if (rd_option && use_excp)
    throw py::value_error("quality, strength, rd_steps, rdoq and weights_step set the "
                          "rate-distortion coding: not with excp=True");
  if (!lossless && use_excp) out.write.excp = excp;
  if (!lossless && !use_excp) out.write.rd = rd;
  return out;
}

// A buffer of bytes, held with its Py_buffer; released (which needs the GIL) by the holder.
struct HeldBuffer {
  py::object owner;
  py::buffer_info info;
  ByteSpan bytes() const {
    return ByteSpan(static_cast<const uint8_t*>(info.ptr), size_t(info.size * info.itemsize));
  }
  MutableByteSpan mutable_bytes() const {
    return MutableByteSpan(static_cast<uint8_t*>(info.ptr), size_t(info.size * info.itemsize));
  }
};

std::unique_ptr<HeldBuffer> Hold(const py::buffer& buffer, bool writable) {
  auto held = std::make_unique<HeldBuffer>();
  held->owner = buffer;
  held->info = buffer.request(writable);
  // C-contiguous: the strides of a packed row-major array.
  py::ssize_t stride = held->info.itemsize;
  for (size_t d = held->info.ndim; d-- > 0;) {
    if (held->info.shape[d] != 1 && held->info.strides[d] != stride)
      throw py::value_error("the buffer is not contiguous");
    stride *= held->info.shape[d];
  }
  return held;
}

std::vector<MetaEntry> UserMetadata(const py::dict& metadata) {
  std::vector<MetaEntry> out;
  for (const auto& [k, v] : metadata) {
    MetaEntry e;
    e.key = py::str(k);
    if (py::isinstance<py::bool_>(v)) e.value = v.cast<bool>();
    else if (py::isinstance<py::int_>(v)) e.value = v.cast<int64_t>();
    else if (py::isinstance<py::float_>(v)) e.value = v.cast<double>();
    else if (py::isinstance<py::str>(v)) e.value = v.cast<std::string>();
    else if (py::isinstance<py::bytes>(v)) {
      const std::string b = v.cast<std::string>();
      e.value = std::vector<uint8_t>(b.begin(), b.end());
    } else {
      throw py::type_error("metadata '" + e.key + "': values are str, int, float, bool or bytes");
    }
    out.push_back(std::move(e));
  }
  return out;
}

py::object MetaToPython(const MetaValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return py::int_(*i);
  if (const auto* d = std::get_if<double>(&v)) return py::float_(*d);
  if (const auto* s = std::get_if<std::string>(&v)) return py::str(*s);
  if (const auto* b = std::get_if<bool>(&v)) return py::bool_(*b);
  const auto& bytes = std::get<std::vector<uint8_t>>(v);
  return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

py::object OptionalStep(const std::optional<int64_t>& step) {
  return step ? py::object(py::int_(*step)) : py::object(py::none());
}

// What a write did: the written file's identity and what the encoder decided.
struct WriteSummary {
  ContentId id{};
  std::optional<int64_t> step;
  uint32_t depth = 0;
  uint64_t input_bytes = 0, file_bytes = 0;
  WriteReport report;
  std::vector<std::string> notes;
  uint64_t lstm_chunks = 0;  // (0.9) level chunks coded with the LSTM model
};

py::dict SummaryToPython(const WriteSummary& s) {
  py::dict d;
  d["content_id"] = ContentIdHex(s.id);
  d["step"] = OptionalStep(s.step);
  d["depth"] = s.depth;
  d["input_bytes"] = s.input_bytes;
  d["file_bytes"] = s.file_bytes;
  d["quantized"] = s.report.quantized;
  d["lossless"] = s.report.lossless;
  d["notes"] = s.notes;
  d["lstm_chunks"] = s.lstm_chunks;
  return d;
}

// Encodes `input` into `path` (atomically): a link of `parent` when given, else a keyframe.
// Runs without the GIL.
// A link's LSTM model (spec 7.11), with `from_parent` when the parent's header holds it.
void WriteOne(const InputCheckpoint& input, const std::string& path, bool overwrite,
              ReferenceSource* reference, const std::optional<LinkInfo>& link,
              const SaveOptions& options, DecodedCheckpoint* decoded, WriteSummary* summary,
              const std::shared_ptr<const LstmModel>& lstm = nullptr, bool from_parent = false) {
  auto sink = Check(AtomicFileSink::Create(path, overwrite));
  Writer writer(std::move(sink), options.encode);
  writer.SetWriterName(std::string("ckz ") + CKZ_VERSION);
  if (link) writer.SetLink(*link);
  if (link && lstm) Check(writer.SetLstmModel(lstm, from_parent));
  Check(WriteCheckpoint(input, link ? reference : nullptr, &writer, options.write, decoded,
                        &summary->report));
  summary->lstm_chunks = writer.lstm_chunks();
  summary->id = Check(writer.Finish());
  summary->step = input.step;
  summary->depth = link ? link->depth : 0;
  summary->input_bytes = input.TotalBytes();
  summary->notes = input.notes;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) summary->file_bytes = uint64_t(st.st_size);
}

// ckz.save: one checkpoint (the bytes of a torch.save or safetensors file) to one .ckz file.
py::dict Encode(const py::buffer& buffer, const std::string& path, const std::string& name,
                std::optional<int64_t> step, std::optional<std::string> parent,
                std::vector<std::string> search, bool lossless, uint64_t keyframe_interval,
                const py::dict& options, bool overwrite, const py::dict& metadata) {
  const SaveOptions opts = ParseSaveOptions(lossless, keyframe_interval, options);
  const std::unique_ptr<HeldBuffer> held = Hold(buffer, false);
  std::vector<MetaEntry> user_metadata = UserMetadata(metadata);
  WriteSummary summary;
  {
    py::gil_scoped_release release;
    InputCheckpoint input = Check(LoadCheckpointFromMemory(held->bytes(), name));
    if (step) input.step = step;
    for (MetaEntry& e : user_metadata) input.metadata.push_back(std::move(e));
    std::unique_ptr<ChainReader> reader;
    std::optional<LinkInfo> link;
    if (parent) {
      ChainOptions chain;
      chain.search_dirs = search;
      reader = Check(ChainReader::Open(*parent, chain));
      link = LinkTo(*reader);
      if (link->depth >= opts.keyframe_interval) link.reset();  // time for a keyframe
    }
    WriteOne(input, path, overwrite, reader.get(), link, opts, nullptr, &summary);
  }
  return SummaryToPython(summary);
}

// The writer of a chain: each write is a link against what decoders reconstruct from the
// previous one, kept in memory (no re-read, no re-decode), keyframes at the interval.
class ChainWriter {
 public:
  ChainWriter(bool lossless, uint64_t keyframe_interval, const py::dict& options)
      : options_(ParseSaveOptions(lossless, keyframe_interval, options)) {
    // Peak memory of a save: the snapshot (1x) plus O(chunk). Snapshots are ours: the lossy
    // tensors decode over them; a link's indices replace its parent's tensor by tensor; and the
    // plans' level arrays (4 bytes per element) live one batch of a few chunks per thread, not
    // the default 64 MiB (the batch only buys parallelism across tensors).
    options_.write.decode_into_input = true;
    options_.write.release_reference_indices = true;
    options_.write.batch_bytes =
        std::min(options_.write.batch_bytes,
                 uint64_t(kChainBatchChunks) * options_.encode.chunk_bytes *
                     uint64_t(std::max(1, options_.encode.threads)));
    options_.write.kept_plan_bytes = std::min(options_.write.kept_plan_bytes, options_.write.batch_bytes);
  }

  // Continues the chain of the file at `path` (resuming a job): the next write links to it.
  void Attach(const std::string& path, std::vector<std::string> search) {
    std::unique_ptr<ChainReader> reader;
    {
      py::gil_scoped_release release;
      ChainOptions chain;
      chain.search_dirs = search;
      reader = Check(ChainReader::Open(path, chain));
    }
    parent_path_ = path;
    search_ = std::move(search);
    link_ = LinkTo(*reader);
    // A chain written with an LSTM model goes on with it (the file's own or its parent's).
    lstm_ = reader->archive().lstm_model;
    parent_has_model_ = lstm_ != nullptr;
    disk_parent_ = std::move(reader);
    decoded_.reset();
    held_.reset();
  }

  // Writes the checkpoint in `buffer` (torch.save bytes, writable: the lossy tensors' decoded
  // values are written over it, and it is kept as the next link's reference) to `path`.
  py::dict Write(const py::buffer& buffer, const std::string& path, const std::string& name,
                 std::optional<int64_t> step, bool overwrite, const py::dict& metadata) {
    std::unique_ptr<HeldBuffer> held = Hold(buffer, true);
    std::vector<MetaEntry> user_metadata = UserMetadata(metadata);
    auto decoded = std::make_unique<DecodedCheckpoint>();
    WriteSummary summary;
    bool writing = false;
    try {
      py::gil_scoped_release release;
      InputCheckpoint input = Check(LoadCheckpointFromMemory(held->bytes(), name));
      if (step) input.step = step;
      for (MetaEntry& e : user_metadata) input.metadata.push_back(std::move(e));
      std::optional<LinkInfo> link = link_;
      if (link && link->depth >= options_.keyframe_interval) link.reset();
      if (!link) {  // a keyframe: the next group trains its own model
        lstm_.reset();
        parent_has_model_ = false;
      }
      if (link && !decoded_ && !disk_parent_) {  // a failed write used up the one in memory
        ChainOptions chain;
        chain.search_dirs = search_;
        disk_parent_ = Check(ChainReader::Open(parent_path_, chain));
      }
      ReferenceSource* reference = decoded_ ? static_cast<ReferenceSource*>(decoded_.get())
                                            : disk_parent_.get();
      writing = link && decoded_;
      WriteOne(input, path, overwrite, reference, link, options_, decoded.get(), &summary, lstm_,
               parent_has_model_);
    } catch (...) {
      // The parent in memory may have released some of its indices: the next write reads the
      // parent from its file instead. (Here, with the GIL: held_ is a Python object.)
      if (writing) {
        decoded_.reset();
        held_.reset();
      }
      throw;
    }
    // The new file is the parent of the next write; its decoded tensors view `held`.
    decoded_ = std::move(decoded);
    disk_parent_.reset();
    held_ = std::move(held);
    link_ = LinkInfo{summary.id, summary.step, BaseName(path), summary.depth + 1};
    parent_path_ = path;
    // The header holds the model when the parent's was taken or some chunk used an own one
    // (Writer::SetLstmModel); otherwise the next link stores it again.
    parent_has_model_ = lstm_ && summary.depth > 0 && (parent_has_model_ || summary.lstm_chunks > 0);
    return SummaryToPython(summary);
  }

  // (0.9) The LSTM model (a ckz-lstm-train output file) the next links of this keyframe group
  // code their levels with: the next link stores it, later ones take it from their parent.
  void SetLstmModel(const std::string& path) {
    LstmModel model;
    {
      py::gil_scoped_release release;
      model = Check(ReadLstmModelFile(path));
    }
    lstm_ = std::make_shared<const LstmModel>(std::move(model));
    parent_has_model_ = false;
  }
  bool has_lstm_model() const { return lstm_ != nullptr; }

  // Depth the next write would have as a link (0: it will be a keyframe).
  uint32_t next_depth() const {
    return link_ && link_->depth < options_.keyframe_interval ? link_->depth : 0;
  }

 private:
  SaveOptions options_;
  static constexpr int kChainBatchChunks = 4;
  std::optional<LinkInfo> link_;  // to the last file written or attached
  std::string parent_path_;       // that file
  std::vector<std::string> search_;
  std::unique_ptr<ChainReader> disk_parent_;
  std::unique_ptr<DecodedCheckpoint> decoded_;
  std::unique_ptr<HeldBuffer> held_;  // the snapshot decoded_ views
  std::shared_ptr<const LstmModel> lstm_;  // (0.9) this keyframe group's model, if any
  bool parent_has_model_ = false;          // the last file's header holds lstm_
};

// An anonymous mapping of `size` bytes: untouched pages cost nothing.
class ScratchMapping {
 public:
  explicit ScratchMapping(size_t size) : size_(size) {
    if (size_ == 0) return;
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      throw StatusError(Status(ErrorCode::kIoError, "cannot map " + std::to_string(size_) +
                                                        " bytes: " + std::strerror(errno)));
    data_ = static_cast<uint8_t*>(p);
  }
  ~ScratchMapping() {
    if (data_) munmap(data_, size_);
  }
  ScratchMapping(const ScratchMapping&) = delete;
  ScratchMapping& operator=(const ScratchMapping&) = delete;
  MutableByteSpan span() { return MutableByteSpan(data_, size_); }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A .ckz file opened with its chain of parents; tensors decode on demand, range by range.
class Reader {
 public:
  Reader(const std::string& path, std::vector<std::string> search, const std::string& parent) {
    py::gil_scoped_release release;
    ChainOptions chain;
    chain.search_dirs = std::move(search);
    chain.parent_path = parent;
    reader_ = Check(ChainReader::Open(path, chain));
  }

  const Archive& archive() const { return reader_->archive(); }

  py::list Tensors() const {
    py::list out;
    for (const TensorInfo& t : archive().tensors)
      out.append(py::make_tuple(t.name, DTypeName(t.dtype), py::tuple(py::cast(t.shape)),
                                RoleName(t.role), t.byte_length, bool(t.quantization)));
    return out;
  }

  py::dict Metadata() const {
    py::dict d;
    for (const MetaEntry& e : archive().metadata) d[py::str(e.key)] = MetaToPython(e.value);
    return d;
  }

  py::list Files() const {
    py::list out;
    for (const SourceFileInfo& f : archive().files)
      out.append(py::make_tuple(f.path, SourceFormatName(f.format), f.tensors));
    return out;
  }

  // Decodes whole tensors into writable buffers of exactly their size: [(index, buffer)].
  void ReadTensors(const std::vector<std::pair<size_t, py::buffer>>& wanted, int threads) {
    std::vector<std::unique_ptr<HeldBuffer>> held;
    std::vector<TensorRange> ranges;
    for (const auto& [index, buffer] : wanted) {
      if (index >= archive().tensors.size()) throw py::index_error("tensor index out of range");
      held.push_back(Hold(buffer, true));
      const MutableByteSpan out = held.back()->mutable_bytes();
      if (out.size != archive().tensors[index].byte_length)
        throw py::value_error("buffer of " + std::to_string(out.size) + " bytes for tensor '" +
                              archive().tensors[index].name + "' of " +
                              std::to_string(archive().tensors[index].byte_length));
      ranges.push_back({index, 0, out});
    }
    py::gil_scoped_release release;
    Check(reader_->ReadTensors(ranges, threads));
  }

  uint64_t RestoredSize(size_t file) const {
    if (file >= archive().files.size()) throw py::index_error("source file index out of range");
    return RestoredFileSize(*reader_, file);
  }

  // The source file, rebuilt into a writable buffer of RestoredSize bytes.
  void Restore(size_t file, const py::buffer& buffer, int threads, bool zip_crcs) {
    const std::unique_ptr<HeldBuffer> held = Hold(buffer, true);
    if (file >= archive().files.size()) throw py::index_error("source file index out of range");
    py::gil_scoped_release release;
    Check(RestoreFileToMemory(*reader_, file, held->mutable_bytes(), threads, zip_crcs));
  }

  // A torch.save source file's structure without decoding a tensor: its pickle (checked by
  // the library's restricted unpickler: only whitelisted globals) and, per storage key, the
  // CKZ tensor that holds the storage's bytes.
  py::tuple TorchStructure(size_t file) const {
    if (file >= archive().files.size()) throw py::index_error("source file index out of range");
    const SourceFileInfo& f = archive().files[file];
    if (f.format != SourceFormat::kTorchZip)
      throw StatusError(Status(ErrorCode::kUnsupported,
                               "source file '" + f.path + "' is not a torch.save file"));
    std::string pickle;
    std::vector<py::tuple> storages;
    std::vector<std::tuple<std::string, uint32_t>> found;
    {
      py::gil_scoped_release release;
      ScratchMapping scratch(size_t(RestoredFileSize(*reader_, file)));
      Check(RestoreProlog(*reader_, file, scratch.span()));
      const TorchFile torch = Check(ParseTorchFile(scratch.span(), /*check_crcs=*/false));
      const ZipEntry* entry = torch.zip.Find(torch.archive_name + "/data.pkl");
      if (!entry)
        throw StatusError(Status(ErrorCode::kZipMalformed, f.path + ": no data.pkl entry"));
      pickle.assign(reinterpret_cast<const char*>(scratch.span().data + entry->data_offset),
                    size_t(entry->size));
      const std::vector<uint64_t> offsets = RestoredTensorOffsets(*reader_, file);
      std::unordered_map<uint64_t, uint32_t> tensor_at;
      for (size_t i = 0; i < offsets.size(); ++i) tensor_at.emplace(offsets[i], f.tensors[i]);
      for (size_t s = 0; s < torch.pickle.storages.size(); ++s) {
        auto it = tensor_at.find(torch.storage_entries[s]->data_offset);
        if (it == tensor_at.end() ||
            archive().tensors[it->second].byte_length != torch.storage_entries[s]->size)
          throw StatusError(Status(ErrorCode::kTorchStorageMismatch,
                                   f.path + ": storage '" + torch.pickle.storages[s].key +
                                       "' is not one of the file's tensors"));
        found.emplace_back(torch.pickle.storages[s].key, it->second);
      }
    }
    py::dict by_key;
    for (const auto& [key, tensor] : found) by_key[py::str(key)] = tensor;
    return py::make_tuple(py::bytes(pickle), by_key);
  }

  py::dict Verify(int threads) {
    VerifyReport report;
    {
      py::gil_scoped_release release;
      report = Check(VerifyChain(*reader_, threads));
    }
    py::dict d;
    d["tensors"] = report.tensors;
    d["chunks"] = report.chunks;
    d["raw_bytes"] = report.raw_bytes;
    d["content_id"] = ContentIdHex(report.computed);
    return d;
  }

  size_t depth() const { return reader_->depth(); }
  const std::string& path() const { return reader_->path(); }

 private:
  std::unique_ptr<ChainReader> reader_;
};

// A file's header alone (no parents opened): what a chain's resume and a directory scan need.
py::dict Peek(const std::string& path) {
  std::unique_ptr<CkzFile> file;
  {
    py::gil_scoped_release release;
    file = Check(OpenCkzFile(path));
  }
  const Archive& a = file->archive;
  py::dict d;
  d["content_id"] = ContentIdHex(a.content_id);
  d["step"] = OptionalStep(a.step);
  d["depth"] = a.link ? a.link->depth : 0;
  d["writer"] = a.writer;
  d["file_bytes"] = a.file.size;
  d["raw_bytes"] = a.TotalRawBytes();
  if (a.link) {
    py::dict link;
    link["parent_content_id"] = ContentIdHex(a.link->parent_content_id);
    link["parent_step"] = OptionalStep(a.link->parent_step);
    link["path_hint"] = a.link->path_hint;
    d["link"] = link;
  } else {
    d["link"] = py::none();
  }
  return d;
}

}  // namespace
}  // namespace ckz_python

PYBIND11_MODULE(_ckz, m) {
  using namespace ckz_python;
  m.doc() = "The CKZ library (C++), bound for the ckz package: use `import ckz`.";
  g_error_type = PyErr_NewExceptionWithDoc(
      "ckz.CkzError",
      "An error of the CKZ library. `code` is the library's ErrorCode name (e.g. "
      "'ParentNotFound'), `code_value` its stable number (spec section 11), `detail` the "
      "library's message.",
      PyExc_Exception, nullptr);
  m.attr("CkzError") = py::handle(g_error_type);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object error = py::reinterpret_borrow<py::object>(g_error_type)(e.text);
      error.attr("code") = ckz::ErrorCodeName(e.status.code());
      error.attr("code_value") = int(e.status.code());
      error.attr("detail") = e.status.message();
      PyErr_SetObject(g_error_type, error.ptr());
    }
  });
  m.attr("__version__") = CKZ_VERSION;
  m.attr("FORMAT_VERSION") = py::make_tuple(ckz::kFormatMajor, ckz::kFormatMinor);

  m.def("encode", &Encode, py::arg("buffer"), py::arg("path"), py::arg("name"),
        py::arg("step") = py::none(), py::arg("parent") = py::none(),
        py::arg("search") = std::vector<std::string>{}, py::arg("lossless") = false,
        py::arg("keyframe_interval") = 10, py::arg("options") = py::dict(),
        py::arg("overwrite") = false, py::arg("metadata") = py::dict(),
        "Encodes one checkpoint file held in `buffer` (torch.save or safetensors bytes) into "
        "the .ckz file `path`, recording it as source file `name`; a link of `parent` when "
        "given (a keyframe when the parent's chain is keyframe_interval long).");
  m.def("peek", &Peek, py::arg("path"), "The header of a .ckz file (no parents opened).");

  py::class_<ChainWriter>(m, "ChainWriter")
      .def(py::init<bool, uint64_t, const py::dict&>(), py::arg("lossless") = false,
           py::arg("keyframe_interval") = 10, py::arg("options") = py::dict())
      .def("attach", &ChainWriter::Attach, py::arg("path"),
           py::arg("search") = std::vector<std::string>{})
      .def("write", &ChainWriter::Write, py::arg("buffer"), py::arg("path"), py::arg("name"),
           py::arg("step") = py::none(), py::arg("overwrite") = false,
           py::arg("metadata") = py::dict())
      .def_property_readonly("next_depth", &ChainWriter::next_depth)
      .def("set_lstm_model", &ChainWriter::SetLstmModel, py::arg("path"),
           "Codes the next links of this keyframe group with the LSTM model in `path` (a "
           "ckz-lstm-train output): the next link stores it, later ones take it from the parent.")
      .def_property_readonly("has_lstm_model", &ChainWriter::has_lstm_model);
  m.def("lstm_training_steps", &LstmTrainingSteps, py::arg("checkpoint_bytes"),
        py::arg("links_to_come"),
        "ckz-lstm-train's budget for a keyframe group: one step per MiB of the checkpoint times "
        "the links still to come, 60 to 400 (the rule of ckz compress --lstm).");

  py::class_<Reader>(m, "Reader")
      .def(py::init<const std::string&, std::vector<std::string>, const std::string&>(),
           py::arg("path"), py::arg("search") = std::vector<std::string>{},
           py::arg("parent") = std::string())
      .def("tensors", &Reader::Tensors)
      .def("metadata", &Reader::Metadata)
      .def("files", &Reader::Files)
      .def("read_tensors", &Reader::ReadTensors, py::arg("wanted"), py::arg("threads") = 1)
      .def("restored_size", &Reader::RestoredSize, py::arg("file") = 0)
      .def("restore", &Reader::Restore, py::arg("file"), py::arg("buffer"),
           py::arg("threads") = 1, py::arg("zip_crcs") = true)
      .def("torch_structure", &Reader::TorchStructure, py::arg("file") = 0)
      .def("verify", &Reader::Verify, py::arg("threads") = 1)
      .def_property_readonly("depth", &Reader::depth)
      .def_property_readonly("path", &Reader::path)
      .def_property_readonly("step",
                             [](const Reader& r) { return OptionalStep(r.archive().step); })
      .def_property_readonly(
          "content_id", [](const Reader& r) { return ckz::ContentIdHex(r.archive().content_id); })
      .def_property_readonly("writer", [](const Reader& r) { return r.archive().writer; });
}
