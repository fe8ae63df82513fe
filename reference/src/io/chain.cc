// Chains on disk: a link names its parent by content id; the parent is looked for at the
// user's --ref, then at the link's path hint, then among .ckz files in the search folders.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "ckz/content_id.h"
#include "ckz/io.h"
#include "common/parallel.h"
#include "common/rule_switch.h"
#include "io/scratch_file.h"

namespace ckz {
namespace {

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint32_t DepthOf(const Archive& a) { return a.link ? a.link->depth : 0; }

std::string Describe(const LinkInfo& link) {
  std::string s = "parent content id " + ContentIdHex(link.parent_content_id);
  if (link.parent_step) s += " (step " + std::to_string(*link.parent_step);
  if (!link.path_hint.empty())
    s += std::string(link.parent_step ? ", " : " (") + "written as '" + link.path_hint + "'";
  if (link.parent_step || !link.path_hint.empty()) s += ")";
  return s;
}

}  // namespace

Result<std::unique_ptr<CkzFile>> OpenCkzFile(const std::string& path, const Limits& limits) {
  auto file = std::make_unique<CkzFile>();
  {
    Result<MappedFile> m = MappedFile::Open(path);
    if (!m.ok()) return m.status();
    file->mapping = std::move(m).value();
  }
  Limits parse_limits = limits;
  const MappedFile& mapping = file->mapping;
  uint64_t released = 0;  // the pages the parser has read so far go as it goes
  parse_limits.read_below = [&mapping, &released](uint64_t offset) {
    mapping.ReleasePages(released, offset);
    released = std::max(released, offset);
  };
  Result<Archive> a = ParseArchive(mapping.bytes(), parse_limits);
  if (!a.ok()) return a.status().WithContext(path);
  file->archive = std::move(a).value();
  return file;
}

std::string ParentIndex::Find(const std::string& dir, const ContentId& id) {
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) {
    std::map<ContentId, std::string> found;
    if (DIR* d = opendir(dir.c_str())) {
      std::vector<std::string> names;
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (EndsWith(name, ".ckz") && name[0] != '.') names.push_back(name);
      }
      closedir(d);
      std::sort(names.begin(), names.end());  // deterministic choice among duplicates
      for (const std::string& name : names) {
        const std::string path = dir + "/" + name;
        if (!IsRegularFile(path)) continue;
        auto file = OpenCkzFile(path, limits_);
        if (file.ok()) found.emplace((*file)->archive.content_id, path);
      }
    }
    it = dirs_.emplace(dir, std::move(found)).first;
  }
  auto hit = it->second.find(id);
  return hit == it->second.end() ? std::string() : hit->second;
}

Result<std::unique_ptr<ChainReader>> ChainReader::Open(const std::string& path,
                                                       const ChainOptions& options) {
  ParentIndex index(options.limits);
  // Decoded parent chunks: a few per decoding thread and chain level.
  return OpenWithIndex(path, options, &index, std::make_shared<IndexCache>(),
                       std::make_shared<IndexCache>(uint64_t{64} << 20));
}

Result<std::unique_ptr<ChainReader>> ChainReader::OpenWithIndex(const std::string& path,
                                                                const ChainOptions& options,
                                                                ParentIndex* index,
                                                                std::shared_ptr<IndexCache> cache,
                                                                std::shared_ptr<IndexCache> chunk_cache) {
  std::unique_ptr<ChainReader> reader(new ChainReader);
  reader->path_ = path;
  reader->index_cache_ = cache;
  reader->chunk_cache_ = chunk_cache;
  {
    auto file = OpenCkzFile(path, options.limits);
    if (!file.ok()) return file.status();
    reader->file_ = std::move(file).value();
  }
  const Archive& a = reader->file_->archive;
  if (!a.link) {
    CKZ_RETURN_IF_ERROR(reader->DecodeProlog());
    // Parsing read every chunk's stream directory: one page per chunk, and the pages the
    // kernel maps around it, hundreds of MB of a large file.
    reader->file_->mapping.ReleasePages();
    return reader;
  }
  const LinkInfo& link = *a.link;

  std::string parent_path;
  if (!options.parent_path.empty()) {
    auto parent = OpenCkzFile(options.parent_path, options.limits);
    if (!parent.ok()) return parent.status();
    if ((*parent)->archive.content_id != link.parent_content_id)
      return Status(ErrorCode::kWrongParent,
                    path + " expects " + Describe(link) + ", but " + options.parent_path +
                        " has content id " + ContentIdHex((*parent)->archive.content_id));
    parent_path = options.parent_path;
  }
  const std::string dir = DirOf(path);
  if (parent_path.empty() && !link.path_hint.empty()) {
    const std::string hinted = dir + "/" + link.path_hint;
    if (IsRegularFile(hinted)) {
      auto parent = OpenCkzFile(hinted, options.limits);
      if (parent.ok() && (*parent)->archive.content_id == link.parent_content_id)
        parent_path = hinted;
    }
  }
  std::vector<std::string> searched = {dir};
  searched.insert(searched.end(), options.search_dirs.begin(), options.search_dirs.end());
  for (size_t i = 0; parent_path.empty() && i < searched.size(); ++i)
    parent_path = index->Find(searched[i], link.parent_content_id);
  if (parent_path.empty()) {
    std::string where;
    for (const std::string& d : searched) where += (where.empty() ? "" : ", ") + d;
    return Status(ErrorCode::kParentNotFound,
                  path + " is a link (depth " + std::to_string(link.depth) + ") that needs " +
                      Describe(link) + "; no .ckz file with that content id in " + where);
  }

  // Check the parent's depth before following its own link: depths strictly decrease, so a
  // crafted cycle of files cannot recurse forever.
  {
    auto parent_file = OpenCkzFile(parent_path, options.limits);
    if (!parent_file.ok()) return parent_file.status();
    if (DepthOf((*parent_file)->archive) != link.depth - 1)
      return Status(ErrorCode::kBadChain,
                    path + " has link depth " + std::to_string(link.depth) + " but its parent " +
                        parent_path + " has depth " +
                        std::to_string(DepthOf((*parent_file)->archive)) + "; expected " +
                        std::to_string(link.depth - 1));
  }
  // The parent's own parent may sit beside the parent, beside this file, or in a search folder.
  ChainOptions parent_options = options;
  parent_options.parent_path.clear();
  if (std::find(parent_options.search_dirs.begin(), parent_options.search_dirs.end(), dir) ==
      parent_options.search_dirs.end())
    parent_options.search_dirs.push_back(dir);
  auto parent = OpenWithIndex(parent_path, parent_options, index, cache, chunk_cache);
  if (!parent.ok()) return parent.status();
  reader->parent_ = std::move(parent).value();
  // Rule R5 (0.9): a model taken from the parent (resolved there already, down the chain).
  {
    Status s = ResolveLstmModel(&reader->file_->archive, reader->parent_->archive());
    if (!s.ok()) return s.WithContext(path);
  }
  // Rule R3 for tensors without elements: no chunk of theirs is ever decoded, so check their
  // reference, then the parent's tensor of their step source (spec 7.9.1), here (a non-empty
  // tensor's are checked when its chunks are).
  for (const TensorInfo& t : a.tensors) {
    if (t.byte_length != 0) continue;
    if (t.NeedsReference()) {
      Status s = reader->parent_->ReadReference(t, 0, MutableByteSpan());
      if (!s.ok()) return s.WithContext(path);
    }
    if (t.quantization && t.quantization->step_source >= 0) {
      Status s = reader->parent_->ReadReference(
          a.tensors[size_t(t.quantization->step_source)], 0, MutableByteSpan());
      if (!s.ok()) return s.WithContext(path);
    }
  }
  CKZ_RETURN_IF_ERROR(reader->DecodeProlog());
  reader->file_->mapping.ReleasePages();  // as above
  return reader;
}

Status ChainReader::DecodeProlog() {
  for (SourceFileInfo& f : file_->archive.files) {
    if (f.prolog_codec == PrologCodec::kStored) continue;
    ByteSpan history;
    if (f.prolog_codec == PrologCodec::kZstdParent) {
      const std::vector<SourceFileInfo>* parent_files =
          parent_ ? parent_->ReferenceFiles() : nullptr;
      if (!parent_files || f.prolog_parent_file >= parent_files->size())
        return Status(ErrorCode::kReferenceMismatch,
                      path_ + ": source file '" + f.path + "' has its prolog coded against the "
                      "parent's files[" + std::to_string(f.prolog_parent_file) + "], but the "
                      "parent has " + std::to_string(parent_files ? parent_files->size() : 0) +
                      " files");
      history = ByteSpan((*parent_files)[f.prolog_parent_file].prolog);
    }
    Status s = ckz::DecodeProlog(&f, history);
    if (!s.ok()) return s.WithContext(path_);
  }
  return Status::Ok();
}

const std::vector<SourceFileInfo>* ChainReader::ReferenceFiles() { return &archive().files; }

void ChainReader::ReleaseMemory() {
  file_->mapping.ReleasePages();
  if (parent_) parent_->ReleaseMemory();
  if (decoded_parent_) decoded_parent_->ReleaseMemory();
}

Status ChainReader::ReadTensor(size_t index, uint64_t offset, MutableByteSpan out, int threads) {
  DecodeOptions options;
  options.threads = threads;
  options.index_cache = index_cache_.get();
  options.chunk_cache = chunk_cache_.get();
  Status s = DecodeTensorRange(archive(), index, offset, out, reference(), options);
  return s.ok() ? s : s.WithContext(path_);
}

Status ChainReader::ReadTensors(const std::vector<TensorRange>& ranges, int threads) {
  DecodeOptions options;
  options.threads = threads;
  options.index_cache = index_cache_.get();
  options.chunk_cache = chunk_cache_.get();
  Status s = DecodeTensorRanges(archive(), ranges, reference(), options);
  return s.ok() ? s : s.WithContext(path_);
}

Status ChainReader::ReadReference(const TensorInfo& tensor, uint64_t offset, MutableByteSpan out) {
  const auto index = archive().FindTensor(tensor.name);
  if (!index)
    return Status(ErrorCode::kReferenceMismatch,
                  path_ + " has no tensor '" + tensor.name + "' to predict it from");
  const TensorInfo& mine = archive().tensors[*index];
  if (CKZ_RULE_ON(R3) && (mine.dtype != tensor.dtype || mine.shape != tensor.shape))
    return Status(ErrorCode::kReferenceMismatch,
                  path_ + ": tensor '" + tensor.name + "' has another dtype or shape than the "
                  "tensor predicted from it");
  return ReadTensor(*index, offset, out, 1);
}

Status ChainReader::ReadReferenceIndices(const TensorInfo& tensor, uint64_t first,
                                         MutableByteSpan out, uint32_t* centres) {
  *centres = 0;
  const auto index = archive().FindTensor(tensor.name);
  if (!index) return Status::Ok();
  const TensorInfo& mine = archive().tensors[*index];
  // Spec 7.7.2: only a quantized parent tensor of the same dtype and shape gives indices;
  // (0.7, 7.9.3) levels only to a level tensor, indices only to a codebook tensor.
  if (mine.dtype != tensor.dtype || mine.shape != tensor.shape || !mine.quantization ||
      !tensor.quantization || mine.quantization->IsLevels() != tensor.quantization->IsLevels())
    return Status::Ok();
  Status s = DecodeIndexRange(archive(), *index, first, out, reference(), index_cache_.get());
  if (!s.ok()) return s.WithContext(path_);
  *centres = mine.quantization->IsLevels() ? 1 : uint32_t(mine.quantization->codebook.size());
  return Status::Ok();
}

namespace {

// One window of StreamTensors: ranges decoded together, and for each the (order index, byte
// offset) that `visit` gets.
struct StreamPiece {
  std::vector<TensorRange> ranges;
  std::vector<std::pair<size_t, uint64_t>> visits;
};

// Cuts `order` into pieces: tensors of at most `window` bytes batched up to `window` bytes,
// larger ones in `window`-sized parts. Next() fills a piece over `buffer`; false at the end.
class PieceCutter {
 public:
  PieceCutter(const Archive& a, const std::vector<uint32_t>& order, uint64_t window)
      : a_(a), order_(order), window_(window) {}
  bool Next(uint8_t* buffer, StreamPiece* piece) {
    piece->ranges.clear();
    piece->visits.clear();
    uint64_t used = 0;
    while (i_ < order_.size()) {
      const uint64_t length = a_.tensors[order_[i_]].byte_length;
      if (length > window_) {
        if (!piece->ranges.empty()) break;
        const uint64_t n = std::min(window_, length - pos_);
        piece->ranges.push_back({order_[i_], pos_, MutableByteSpan(buffer, size_t(n))});
        piece->visits.push_back({i_, pos_});
        pos_ += n;
        if (pos_ == length) ++i_, pos_ = 0;
        break;
      }
      if (used + length > window_) break;
      piece->ranges.push_back({order_[i_], 0, MutableByteSpan(buffer + used, size_t(length))});
      piece->visits.push_back({i_, 0});
      used += length;
      ++i_;
    }
    return !piece->ranges.empty();
  }

 private:
  const Archive& a_;
  const std::vector<uint32_t>& order_;
  const uint64_t window_;
  size_t i_ = 0;
  uint64_t pos_ = 0;
};

}  // namespace

Status StreamTensors(ChainReader& reader, const std::vector<uint32_t>& order, uint64_t window,
                     int threads,
                     const std::function<Status(size_t i, uint64_t offset, ByteSpan bytes)>& visit) {
  const Archive& a = reader.archive();
  for (uint32_t t : order)
    if (t >= a.tensors.size()) return Status(ErrorCode::kInvalidArgument, "tensor index out of range");
  window = std::max<uint64_t>(window, 1);
  uint64_t total = 0;
  for (uint32_t t : order) total += a.tensors[t].byte_length;
  // With more than one thread, window k+1 decodes (on a lane of its own, its chunks shared by
  // `threads` workers) while the caller visits window k: writing the output then overlaps the
  // decoding instead of following it. One thread decodes and visits in turn.
  const bool pipelined = threads > 1;
  std::vector<uint8_t> buffers[2];
  for (int b = 0; b < (pipelined ? 2 : 1); ++b) buffers[b].resize(size_t(std::min(window, total)));
  PieceCutter cutter(a, order, window);
  StreamPiece pieces[2];
  auto decode = [&](StreamPiece& piece) { return reader.ReadTensors(piece.ranges, threads); };
  auto visit_piece = [&](const StreamPiece& piece) -> Status {
    for (size_t k = 0; k < piece.ranges.size(); ++k) {
      const TensorRange& r = piece.ranges[k];
      const ByteSpan bytes(r.out.data, r.out.size);
      if (reader.recorder()) CKZ_RETURN_IF_ERROR(reader.recorder()->Record(r.tensor, r.offset, bytes));
      CKZ_RETURN_IF_ERROR(visit(piece.visits[k].first, piece.visits[k].second, bytes));
    }
    return Status::Ok();
  };
  if (!pipelined) {
    while (cutter.Next(buffers[0].data(), &pieces[0])) {
      CKZ_RETURN_IF_ERROR(decode(pieces[0]));
      CKZ_RETURN_IF_ERROR(visit_piece(pieces[0]));
      reader.ReleaseMemory();  // the files' pages read for this window
    }
    return Status::Ok();
  }
  Status decoded;  // declared before the lane, whose task writes it until the lane is gone
  BackgroundLane lane;
  if (!cutter.Next(buffers[0].data(), &pieces[0])) return Status::Ok();
  lane.Start([&] { decoded = decode(pieces[0]); });
  for (int cur = 0;; cur ^= 1) {
    lane.Wait();
    CKZ_RETURN_IF_ERROR(decoded);
    reader.ReleaseMemory();  // nothing decodes now: the files' pages read so far
    const bool more = cutter.Next(buffers[cur ^ 1].data(), &pieces[cur ^ 1]);
    if (more) lane.Start([&, next = cur ^ 1] { decoded = decode(pieces[next]); });
    // The error of an earlier window comes first: the lane's task finishes before `lane` goes.
    CKZ_RETURN_IF_ERROR(visit_piece(pieces[cur]));
    if (!more) return Status::Ok();
  }
}

DecodedReference::DecodedReference() = default;
DecodedReference::~DecodedReference() = default;

Result<std::unique_ptr<DecodedReference>> DecodedReference::Create(const Archive& archive,
                                                                   const std::string& dir) {
  std::unique_ptr<DecodedReference> r(new DecodedReference);
  r->content_id_ = archive.content_id;
  r->files_ = archive.files;
  auto file = ScratchFile::Create(dir);
  if (!file.ok()) return file.status();
  r->file_ = std::move(file).value();
  for (size_t t = 0; t < archive.tensors.size(); ++t) {
    const TensorInfo& info = archive.tensors[t];
    Entry e;
    e.name = info.name;
    e.dtype = info.dtype;
    e.shape = info.shape;
    e.byte_length = info.byte_length;
    e.bytes_at = r->file_->Reserve(info.byte_length);
    r->expected_ += info.byte_length;
    if (info.quantization) {
      e.levels = info.quantization->IsLevels();
      e.centres = e.levels ? 1 : uint32_t(info.quantization->codebook.size());
      e.symbol_bytes = uint32_t(info.quantization->SymbolBytes());
      e.indices_at = r->file_->Reserve(info.num_elements * e.symbol_bytes);
    }
    r->by_name_.emplace(e.name, t);
    r->entries_.push_back(std::move(e));
  }
  return r;
}

Status DecodedReference::Record(size_t tensor, uint64_t offset, ByteSpan bytes) {
  if (finished_ || tensor >= entries_.size() || offset > entries_[tensor].byte_length ||
      bytes.size > entries_[tensor].byte_length - offset)
    return Status(ErrorCode::kInvalidArgument, "DecodedReference::Record: out of range");
  CKZ_RETURN_IF_ERROR(file_->Write(entries_[tensor].bytes_at + offset, bytes));
  recorded_ += bytes.size;
  return Status::Ok();
}

Status DecodedReference::Finish(ChainReader& reader) {
  if (recorded_ != expected_ || reader.archive().content_id != content_id_)
    return Status(ErrorCode::kInvalidArgument,
                  "DecodedReference::Finish: " + std::to_string(recorded_) + " of " +
                      std::to_string(expected_) + " bytes recorded");
  constexpr uint64_t kWindow = uint64_t{4} << 20;  // elements per read
  std::vector<uint8_t> buffer;
  for (size_t t = 0; t < entries_.size(); ++t) {
    const Entry& e = entries_[t];
    if (e.centres == 0) continue;
    const TensorInfo& info = reader.archive().tensors[t];
    for (uint64_t first = 0; first < info.num_elements; first += kWindow) {
      buffer.resize(size_t(std::min(kWindow, info.num_elements - first) * e.symbol_bytes));
      uint32_t centres = 0;
      CKZ_RETURN_IF_ERROR(reader.ReadReferenceIndices(info, first, MutableByteSpan(buffer), &centres));
      CKZ_RETURN_IF_ERROR(file_->Write(e.indices_at + first * e.symbol_bytes, ByteSpan(buffer)));
    }
  }
  finished_ = true;
  return Status::Ok();
}

const DecodedReference::Entry* DecodedReference::Find(const TensorInfo& tensor) const {
  auto it = by_name_.find(tensor.name);
  if (it == by_name_.end()) return nullptr;
  const Entry& e = entries_[it->second];
  return e.dtype == tensor.dtype && e.shape == tensor.shape ? &e : nullptr;
}

Status DecodedReference::ReadReference(const TensorInfo& tensor, uint64_t offset,
                                       MutableByteSpan out) {
  const Entry* e = Find(tensor);
  if (!e)
    return Status(ErrorCode::kReferenceMismatch,
                  "the decoded parent has no tensor '" + tensor.name + "' of that dtype and shape");
  if (!finished_) return Status(ErrorCode::kInvalidArgument, "DecodedReference read before Finish");
  if (offset > e->byte_length || out.size > e->byte_length - offset)
    return Status(ErrorCode::kInvalidArgument, "reference range outside the tensor");
  return file_->Read(e->bytes_at + offset, out);
}

Status DecodedReference::ReadReferenceIndices(const TensorInfo& tensor, uint64_t first,
                                              MutableByteSpan out, uint32_t* centres) {
  *centres = 0;
  const Entry* e = Find(tensor);
  // Indices only to a codebook tensor, levels only to a level tensor (spec 7.9.3).
  if (!e || e->centres == 0 || !tensor.quantization ||
      e->levels != tensor.quantization->IsLevels())
    return Status::Ok();
  const uint64_t elements = e->byte_length / DTypeSize(e->dtype);
  if (out.size % e->symbol_bytes != 0 || first > elements ||
      out.size / e->symbol_bytes > elements - first)
    return Status(ErrorCode::kInvalidArgument, "reference index range outside the tensor");
  CKZ_RETURN_IF_ERROR(file_->Read(e->indices_at + first * e->symbol_bytes, out));
  *centres = e->centres;
  return Status::Ok();
}

Result<VerifyReport> VerifyChain(ChainReader& reader, int threads,
                                 const std::function<void(uint64_t)>& progress) {
  const Archive& a = reader.archive();
  VerifyReport report;
  ContentIdBuilder cid;
  // Decode in windows so memory stays bounded whatever the tensor size.
  constexpr uint64_t kWindow = uint64_t{64} << 20;
  std::vector<uint32_t> order(a.tensors.size());
  for (uint32_t t = 0; t < order.size(); ++t) order[t] = t;
  std::optional<TensorDigester> digester;
  auto finish = [&](size_t t) {
    const TensorInfo& info = a.tensors[t];
    cid.AddTensor(info.name, info.dtype, info.shape, digester->Finish());
    report.chunks += info.chunks.size();
    ++report.tensors;
  };
  CKZ_RETURN_IF_ERROR(StreamTensors(reader, order, kWindow, threads,
                                    [&](size_t t, uint64_t offset, ByteSpan bytes) {
                                      if (offset == 0) {
                                        if (digester) finish(t - 1);
                                        digester.emplace();
                                      }
                                      digester->Update(bytes);
                                      report.raw_bytes += bytes.size;
                                      if (progress) progress(report.raw_bytes);
                                      return Status::Ok();
                                    }));
  if (digester) finish(a.tensors.size() - 1);
  report.computed = cid.Finish();
  if (report.computed != a.content_id)
    return Status(ErrorCode::kContentIdMismatch,
                  reader.path() + ": decoded checkpoint has content id " +
                      ContentIdHex(report.computed) + ", the header declares " +
                      ContentIdHex(a.content_id));
  return report;
}

}  // namespace ckz
