// ckz: compress, decompress and verify training checkpoints. A thin layer over the public API.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "ckz/checkpoint.h"
#include "ckz/io.h"
#include "ckz/json.h"
#include "ckz/writer.h"
#include "cli.h"

namespace ckz::cli {
namespace {

// The first line (name and format version) is printed by PrintUsage.
const char kUsage[] =
    "\n"
    "Usage:\n"
    "  ckz compress INPUT [-o OUT.ckz] [--ref PARENT.ckz]\n"
    "  ckz compress DIR|INPUT... -o OUTDIR    a training history, compressed as a chain\n"
    "  ckz decompress FILE.ckz... [-o OUT | --output-dir DIR]\n"
    "  ckz verify FILE.ckz...\n"
    "  ckz info FILE.ckz... [--json | --jsonl] [--chunks]  (same as ckzinfo)\n"
    "  ckz report DIR|FILE.ckz... [--json] [--against HISTORY]  a chain, file by file\n"
    "\n"
    "INPUT is a checkpoint: a .safetensors file; a torch.save .pt/.pth/.bin file (read\n"
    "without running pickle code: Python objects in it are carried as they are); a\n"
    "model.safetensors.index.json with its shards; or a checkpoint folder (a shard index, a\n"
    "Hugging Face Trainer checkpoint-N folder, or one checkpoint file with the files beside\n"
    "it: every file is restored). A folder of several checkpoint files (or of checkpoint-N\n"
    "folders) is a history: its members are taken in natural name order and compressed as a\n"
    "chain; other files in it are named in a note, links to a member are not members.\n"
    "'-' as INPUT or FILE.ckz reads standard input, as OUT writes standard output (the\n"
    "default when the input is '-'); they go through a temporary file in $TMPDIR.\n"
    "\n"
    "compress:\n"
    "  -o, --output PATH        output file (default INPUT.ckz); a folder for a history. A\n"
    "                           history's folder may hold the outputs of an earlier run: only\n"
    "                           checkpoints after its last one are added, as links\n"
    "  --ref PARENT.ckz         store INPUT as a link predicted from PARENT (its chain is\n"
    "                           found beside it)\n"
    "  --keyframe-interval N    at most N-1 links between self-contained keyframes, so any\n"
    "                           step restores with at most N decodes (default 10; 1 = all\n"
    "                           keyframes)\n"
    "  --segment I/N            a history: compress only the I-th of N equal shares of its\n"
    "                           keyframe groups (a keyframe and its links, members kK ..\n"
    "                           kK+K-1 with K the keyframe interval), so that N machines\n"
    "                           (a Slurm array, GNU parallel) compress one history into\n"
    "                           one OUTDIR; runs of all segments give the files of one run\n"
    "  --keep-going             a history: skip checkpoints that cannot be read (with a note)\n"
    "                           instead of stopping before anything is written\n"
    "  --json                   print one JSON object per output file (JSON Lines): sizes,\n"
    "                           ratio, time, link depth, and each lossy tensor's coding\n"
    "  --lossless               keep every tensor bit-exact. Without it, links are lossy\n"
    "                           (keyframes never are): weights with an Adam second moment\n"
    "                           and their moments as rate-distortion levels (spec 7.9)\n"
    "  -Q, --quality N          the trade-off of the levels, 1 (smallest files) .. 9 (most\n"
    "                           faithful), default 4; each step changes every quantization\n"
    "                           step by ~1.19x (docs/rate-distortion.md has ratio and\n"
    "                           resume damage per quality)\n"
    "  --strength S             the same as a number: steps times S (quality 5 = 1)\n"
    "  --rd-steps W,M,V         expert: the steps at strength 1 of the weight update (in\n"
    "                           RMS updates), m (in sqrt(v)) and v (in log2); default 2,1.5,2\n"
    "  --rdoq L                 expert: choose levels by error + L x bits (default 0: plain\n"
    "                           rounding; L > 0 biases levels toward zero and costs fidelity)\n"
    "  --weights-step E         also code weights without Adam's v (weights-only files, SGD)\n"
    "                           as levels of E x the tensor's RMS: |error| <= E/2 x RMS\n"
    "                           (default: keep them lossless)\n"
    "  --excp                   shrink links the ExCP way instead (format 0.3's codebooks:\n"
    "                           weight residuals pruned and quantized to 2^bits - 1 centres,\n"
    "                           moments pruned jointly); with it:\n"
    "  --alpha A, --beta B      ExCP pruning strengths (default 5e-5, 2)\n"
    "  --bits N                 index width, 2^N-1 centres per tensor (default 4, 2..8)\n"
    "  --k-at-cap               prune weights with k = 2.5 (ExCP's cap) whatever mean(v)\n"
    "  --fallback-k K           also prune weights without Adam's second moment (SGD,\n"
    "                           RMSprop, Adagrad, weights-only files) at K times the median\n"
    "                           residual, with their moments. Unbounded damage (K = 1: +46 %\n"
    "                           val loss on an SGD history); default: keep them lossless\n"
    "  --v-direct               store Adam's v as ExCP does: pruned elements become 0\n"
    "                           (default: a residual, pruned elements keep the parent's v)\n"
    "  --entropy zstd|packed|cm coding of ExCP's indices: zstd, packed bits, or the context-\n"
    "                           model arithmetic coder (default: the smallest per chunk).\n"
    "                           Lossless F32 values of links: byte planes and zstd (zstd,\n"
    "                           the default), or the cmf context model where it codes a\n"
    "                           sample of the tensor smaller (cm: 2-5 % smaller, decodes\n"
    "                           ~20x slower)\n"
    "  --lstm                   levels also coded with an LSTM model mixed with cml (spec\n"
    "                           7.11; with --excp, indices mixed with cm, 7.11.7), per\n"
    "                           chunk where smaller: a link takes its parent's\n"
    "                           model; the first link of a chain without one trains one\n"
    "                           (ckz-lstm-train, built with libtorch) and keeps it where it\n"
    "                           pays for its bytes over the keyframe group. 1-3 % smaller\n"
    "                           links, decodes at 16-28 MB/s (docs/lstm.md)\n"
    "  --lstm-hidden H          the trained model's hidden size: 8 (default), 16, 24 or 32\n"
    "  --lstm-steps N           the training's optimizer steps (default: one per MiB of the\n"
    "                           checkpoint times the links to come in its group, 60 to 400;\n"
    "                           more steps, smaller links on small checkpoints: docs/lstm.md)\n"
    "  -l, --level N            zstd level of the entropy stage (default 3)\n"
    "  --chunk-size BYTES       decoded bytes per chunk (default: each tensor in equal chunks\n"
    "                           of at most 1048576 bytes, 262144 for lossy-coded tensors)\n"
    "decompress:\n"
    "  -o, --output PATH        output (default: FILE without .ckz); a folder when the\n"
    "                           checkpoint has several files. Naming another format than\n"
    "                           the original (.safetensors, or .pt/.pth/.bin) converts it\n"
    "  --output-dir DIR         restore under DIR, each file under its recorded name; with\n"
    "                           several inputs, a checkpoint of several files goes to the\n"
    "                           folder DIR/<FILE without .ckz>/\n"
    "  --ref PARENT.ckz         the parent of FILE (otherwise found by content id beside\n"
    "                           FILE, under its recorded name or any other)\n"
    "  --search DIR             also look for parent files in DIR (repeatable)\n"
    "decompress and verify take the files of one chain in chain order and decode each file\n"
    "once: a link's parent comes from the file decoded just before it.\n"
    "report:\n"
    "  prints each file's step, link depth, size, ratio and bits per element by role (W\n"
    "  weights, m and v Adam's moments, other), in the order given (a folder: its .ckz\n"
    "  files in name order)\n"
    "  --json                   one JSON array, an object per file\n"
    "  --against HISTORY        the folder of the original checkpoints (OUT/NAME.ckz was\n"
    "                           made from HISTORY/NAME): decodes each file once and adds the\n"
    "                           lossy error by role, RMS(decoded - original) / RMS(original)\n"
    "  (plot ratio and error along the chain: ckz report DIR --json |\n"
    "   python3 tools/history/plot_report.py - -o chain.png)\n"
    "common:\n"
    "  -f, --force              overwrite existing outputs\n"
    "  -T, --threads N          worker threads (default 1; 0 = all cores). Output never\n"
    "                           depends on N\n"
    "  -q, --quiet              print errors only\n"
    "  -v, --verbose            print per-tensor details\n"
    "  -h, --help               this text\n"
    "  -V, --version            print the version\n"
    "\n"
    "Inputs are never modified or removed. Outputs are written to a temporary name and\n"
    "renamed into place when complete. Summaries go to standard output (to standard error\n"
    "when the data does), one line per file, flushed line by line.\n\n";

struct Common {
  bool force = false;
  bool quiet = false;
  bool verbose = false;
  int threads = 1;
  std::vector<std::string> search;
};

// Copies everything `in` holds to `out` (names for messages).
Status Copy(int in, const std::string& in_name, int out, const std::string& out_name) {
  std::vector<char> buffer(size_t(1) << 20);
  while (true) {
    const ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status(ErrorCode::kIoError, in_name + ": read failed: " + std::strerror(errno));
    if (n == 0) return Status::Ok();
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out, buffer.data() + done, size_t(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status(ErrorCode::kIoError, out_name + ": write failed: " + std::strerror(errno));
      done += w;
    }
  }
}

// Private temporary folders for standard input and output ("-"), each holding one file:
// removed when done, and by the signal handler, which finds their paths in fixed slots (no
// locks, no allocation).
constexpr size_t kSpoolSlots = 4, kSpoolPathMax = 4096;
char g_spool_paths[kSpoolSlots][kSpoolPathMax];  // files first, then their folders

void RemoveSpools() {
  for (auto& p : g_spool_paths)
    if (p[0]) unlink(p);
  for (auto& p : g_spool_paths)
    if (p[0]) rmdir(p);
}

void OnSignal(int sig) {
  RemovePendingTemporaryFiles();
  RemoveSpools();
  signal(sig, SIG_DFL);
  raise(sig);
}

class Spool {
 public:
  ~Spool() {
    if (!file_.empty()) unlink(file_.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
    for (int slot : slots_) g_spool_paths[slot][0] = '\0';
  }
  // A file named `name` in a fresh private folder under $TMPDIR.
  Result<std::string> Path(const std::string& name) {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/ckz-XXXXXX";
    if (!mkdtemp(&dir[0]))
      return Status(ErrorCode::kIoError, dir + ": cannot create a temporary folder: " + std::strerror(errno));
    dir_ = dir;
    file_ = dir + "/" + name;
    Claim(file_, 0);
    Claim(dir_, 2);
    return file_;
  }
  // The stream `source` ("-": standard input) copied into the file `name`.
  Result<std::string> From(const std::string& source, const std::string& name) {
    const int in = source == "-" ? STDIN_FILENO : ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) return Status(ErrorCode::kIoError, source + ": cannot open: " + std::strerror(errno));
    auto path = Path(name);
    const int fd = path.ok() ? ::open(path->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
    Status status = path.status();
    if (status.ok() && fd < 0)
      status = Status(ErrorCode::kIoError, *path + ": cannot create: " + std::strerror(errno));
    if (status.ok()) status = Copy(in, source == "-" ? "standard input" : source, fd, *path);
    if (fd >= 0) ::close(fd);
    if (in != STDIN_FILENO) ::close(in);
    if (!status.ok()) return status;
    return path;
  }

 private:
  void Claim(const std::string& path, int first) {  // slots [first, first + 2)
    for (int slot = first; slot < first + 2 && path.size() < kSpoolPathMax; ++slot)
      if (!g_spool_paths[slot][0]) {
        std::memcpy(g_spool_paths[slot], path.c_str(), path.size() + 1);
        slots_.push_back(slot);
        return;
      }
  }
  std::string dir_, file_;
  std::vector<int> slots_;
};

// "-", or a pipe, terminal or socket (/dev/stdin, <(...)): read or written in one pass, so it
// goes through a temporary file (the formats need random access).
bool IsStream(const std::string& path) {
  struct stat st;
  return path == "-" ||
         (stat(path.c_str(), &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode)));
}

// Copies the file `path` to the stream `stream` ("-": standard output).
Status CopyToStream(const std::string& path, const std::string& stream) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status(ErrorCode::kIoError, path + ": cannot open: " + std::strerror(errno));
  const int out = stream == "-" ? STDOUT_FILENO : ::open(stream.c_str(), O_WRONLY | O_CLOEXEC);
  Status status = out < 0 ? Status(ErrorCode::kIoError, stream + ": cannot open: " + std::strerror(errno))
                          : Copy(fd, path, out, stream == "-" ? "standard output" : stream);
  if (out >= 0 && out != STDOUT_FILENO) ::close(out);
  ::close(fd);
  return status;
}


int Fail(const Status& s) {
  fflush(stdout);
  fprintf(stderr, "ckz: %s\n", ErrorText(s).c_str());
  return ExitCodeFor(s);
}

int Usage(const std::string& message) {
  fprintf(stderr, "ckz: %s\nTry 'ckz --help'.\n", message.c_str());
  return kExitUsage;
}

void Note(const Common& common, const std::string& note) {
  if (common.quiet) return;
  fflush(stdout);
  fprintf(stderr, "ckz: note: %s\n", note.c_str());
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// The name a stream is recorded under.
std::string StreamName(const std::string& path) { return path == "-" ? "stdin" : BaseName(path); }

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Joined(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

// ---- history folders ----

struct History {
  std::vector<std::string> members;  // paths, in natural order
  std::vector<std::string> others;   // what is not compressed, and why, for a note
};

// The checkpoints of a history folder, in natural order: its checkpoint files (all of one
// kind: .safetensors or .pt/.pth), or else its subfolders that are checkpoints (a Trainer's
// checkpoint-N folders). Everything else is listed in `others`: files that are not
// checkpoints, hidden files, and symbolic links to a member (latest.pt -> step_20.pt), which
// would otherwise be compressed twice and chained to themselves.
Status ScanHistory(const std::string& dir, History* out) {
  std::vector<std::string> safetensors, torch, folders, ignored, hidden;
  DIR* d = opendir(dir.c_str());
  if (!d) return Status(ErrorCode::kIoError, dir + ": cannot list the folder: " + std::strerror(errno));
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    if (name[0] == '.') {
      hidden.push_back(name + (IsDir(path) ? "/" : ""));
    } else if (EndsWith(name, ".safetensors") && !IsDir(path)) {
      safetensors.push_back(name);
    } else if ((EndsWith(name, ".pt") || EndsWith(name, ".pth")) && !IsDir(path)) {
      torch.push_back(name);
    } else if (IsDir(path)) {
      if (LoadCheckpoint(path).ok())
        folders.push_back(name);
      else
        ignored.push_back(name + "/");
    } else {
      ignored.push_back(name);
    }
  }
  closedir(d);
  if (!safetensors.empty() && !torch.empty())
    return Status(ErrorCode::kUnsupportedInput,
                  dir + " holds both .safetensors and .pt checkpoints: name the files to compress "
                        "(e.g. " + dir + "/*.pt)");
  const bool files = !safetensors.empty() || !torch.empty();
  std::vector<std::string> names = !safetensors.empty() ? safetensors : files ? torch : folders;
  std::vector<std::string> other_folders = files ? folders : std::vector<std::string>();
  std::sort(names.begin(), names.end(), NaturalLess);
  // Links to a member are not members: the real files claim their identity first.
  std::map<std::pair<dev_t, ino_t>, std::string> seen;
  std::set<std::string> link_names;
  std::vector<std::string> links;
  for (int pass = 0; pass < 2; ++pass)
    for (const std::string& n : names) {
      struct stat l, st;
      const std::string path = dir + "/" + n;
      if (lstat(path.c_str(), &l) != 0 || stat(path.c_str(), &st) != 0) continue;  // fails later
      if (S_ISLNK(l.st_mode) != (pass == 1)) continue;
      auto [it, fresh] = seen.emplace(std::make_pair(st.st_dev, st.st_ino), n);
      if (fresh) continue;
      link_names.insert(n);
      links.push_back(n + " (a link to " + it->second + ")");
    }
  for (const std::string& n : names)
    if (!link_names.count(n)) out->members.push_back(dir + "/" + n);
  std::sort(ignored.begin(), ignored.end(), NaturalLess);
  std::sort(hidden.begin(), hidden.end(), NaturalLess);
  std::sort(other_folders.begin(), other_folders.end(), NaturalLess);
  for (std::string& f : other_folders) f += "/";
  if (!ignored.empty()) out->others.push_back(Joined(ignored) + " (not checkpoints)");
  if (!other_folders.empty())
    out->others.push_back(Joined(other_folders) + " (checkpoint folders beside checkpoint files)");
  if (!hidden.empty()) out->others.push_back(Joined(hidden) + " (hidden)");
  if (!links.empty()) out->others.push_back(Joined(links));
  return Status::Ok();
}

// What a checkpoint's files are, to recognise the output of an earlier run: per recorded
// path, the file's size and its bytes outside the tensors (a .pt's pickle and zip records, a
// safetensors header, a file kept verbatim), zip CRC-32 slots zeroed as writers store them;
// and its step. A lossy output differs from its input in tensor bytes only.
struct Signature {
  std::map<std::string, std::pair<uint64_t, std::vector<uint8_t>>> files;
  std::optional<int64_t> step;
};

Signature SignatureOf(const std::vector<SourceFileInfo>& files, std::optional<int64_t> step,
                      const std::function<uint64_t(uint32_t)>& tensor_bytes) {
  Signature sig;
  sig.step = step;
  for (const SourceFileInfo& f : files) {
    uint64_t n = f.prolog.size();
    for (uint32_t t : f.tensors) n += tensor_bytes(t);
    std::vector<uint8_t> prolog = f.prolog;
    for (const Crc32Patch& p : f.crc32_patches)
      if (p.prolog_offset + 4 <= prolog.size()) std::fill_n(prolog.begin() + ptrdiff_t(p.prolog_offset), 4, 0);
    sig.files[f.path] = {n, std::move(prolog)};
  }
  return sig;
}

bool SameCheckpoint(const Signature& a, const Signature& b) {
  return a.files == b.files && (!a.step || !b.step || *a.step == *b.step);
}

// ---- compress ----

// Bytes of a history's decoded checkpoint (lossy tensors and their levels) kept in memory for
// the next link; the rest goes to a temporary file in $TMPDIR.
constexpr uint64_t kDecodedMemoryBytes = uint64_t{256} << 20;

// --lstm (spec 7.11): the model a link codes its levels with.
struct LstmChoice {
  bool enabled = false;
  uint32_t hidden = 8;
  uint32_t steps = 0;  // 0: LstmTrainingSteps' budget
  std::shared_ptr<const LstmModel> own;  // set: the link stores this model; else the parent's
};

struct CompressResult {
  std::string lstm;        // how the link used an LSTM model, for the summary; empty: none
  uint64_t lstm_chunks = 0;
  uint64_t raw = 0;
  uint64_t stored = 0;
  double seconds = 0;
  uint32_t depth = 0;
  std::optional<int64_t> step;
  WriteReport report;
  std::vector<std::string> notes;
};

// Compresses `input` to `output`. With a `parent_path` the output is a link of that file's
// chain (or a keyframe when the chain is `keyframe_interval` long), predicted from the parent's
// decoded tensors: `previous` when given (a history keeps what it just wrote), else decoded
// from the parent's chain. `decoded` receives what decoders will get from `output`.
Status CompressOne(const std::string& input, const std::string& output,
                   const std::string& parent_path, DecodedCheckpoint* previous,
                   uint64_t keyframe_interval, const EncodeOptions& encode,
                   const WriteOptions& write, const Common& common, DecodedCheckpoint* decoded,
                   CompressResult* result, const LstmChoice& lstm = {}) {
  const auto start = std::chrono::steady_clock::now();
  auto in = LoadCheckpoint(input);  // its errors name the file
  if (!in.ok()) return in.status();
  result->notes = in->notes;
  for (const std::string& note : in->notes) Note(common, note);
  std::unique_ptr<ChainReader> parent;
  if (!parent_path.empty()) {
    ChainOptions chain;
    chain.search_dirs = common.search;
    auto p = ChainReader::Open(parent_path, chain);
    if (!p.ok()) return p.status();
    parent = std::move(p).value();
    if (LinkTo(*parent).depth >= keyframe_interval) parent.reset();  // time for a keyframe
  }
  auto sink = AtomicFileSink::Create(output, common.force);
  if (!sink.ok()) return sink.status();
  Progress progress(BaseName(input), in->TotalBytes(), !common.quiet);
  EncodeOptions options = encode;
  options.progress = [&](uint64_t done) { progress.Update(done); };
  Writer writer(std::move(sink).value(), options);
  writer.SetWriterName(std::string("ckz ") + CKZ_VERSION);
  ReferenceSource* reference = nullptr;
  if (parent) {
    writer.SetLink(LinkTo(*parent));
    result->depth = LinkTo(*parent).depth;
    reference = previous ? static_cast<ReferenceSource*>(previous) : parent.get();
    if (lstm.own) {
      CKZ_RETURN_IF_ERROR(writer.SetLstmModel(lstm.own, /*from_parent=*/false));
    } else if (lstm.enabled && parent->archive().lstm_model) {
      CKZ_RETURN_IF_ERROR(writer.SetLstmModel(parent->archive().lstm_model, /*from_parent=*/true));
      result->lstm = "model of the parent";
    }
  }
  WriteOptions once = write;  // the parent serves this link only
  once.release_reference_indices = true;
  CKZ_RETURN_IF_ERROR(WriteCheckpoint(*in, reference, &writer, once, decoded, &result->report));
  auto id = writer.Finish();
  if (!id.ok()) return id.status();
  progress.Finish();
  result->lstm_chunks = writer.lstm_chunks();
  if (lstm.own && result->lstm_chunks > 0)
    result->lstm = "own model, " + std::to_string(lstm.own->StoredBytes()) + " bytes";
  if (common.verbose)
    for (const std::string& why : result->report.lossless)
      fprintf(stderr, "ckz: kept lossless: %s\n", why.c_str());
  struct stat st;
  stat(output.c_str(), &st);
  result->raw = in->TotalFileBytes();
  result->stored = uint64_t(st.st_size);
  result->step = in->step;
  result->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (decoded) decoded->KeepAlive(std::move(in).value());  // its views point into the input
  return Status::Ok();
}

// The trainer program (ckz-lstm-train) beside this ckz, or $CKZ_LSTM_TRAIN.
std::string LstmTrainerPath() {
  if (const char* env = getenv("CKZ_LSTM_TRAIN")) return env;
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "ckz-lstm-train";
  self[n] = 0;
  std::string dir(self);
  dir.erase(dir.rfind('/') + 1);
  return dir + "ckz-lstm-train";
}

// --lstm for a link written without a model (its parent had none): trains one on the link's
// levels (ckz-lstm-train, a separate program: ckz never links libtorch), writes the link again
// with it and keeps that when the model pays for its bytes over the keyframe group (below). The training budget grows with the work it is spread
// over, the checkpoint's size times the links of its chain still to come: one optimizer step
// per MiB of that, 60 to 400 steps. Counted in steps, never in seconds, so that the output
// does not depend on the machine's speed.
Status TrainLstmFor(const std::string& input, const std::string& output,
                    const std::string& parent_path, uint64_t keyframe_interval,
                    uint64_t links_to_come, const EncodeOptions& encode,
                    const WriteOptions& write, const Common& common, const LstmChoice& lstm,
                    CompressResult* result) {
  const auto start = std::chrono::steady_clock::now();
  const std::string trainer = LstmTrainerPath();
  if (access(trainer.c_str(), X_OK) != 0)
    return Status(ErrorCode::kUnsupported,
                  "--lstm: " + trainer + " is missing (it is built when libtorch-dev is "
                  "installed; CKZ_LSTM_TRAIN names another)");
  char model_path[] = "/tmp/ckz-lstm-XXXXXX";
  const int fd = mkstemp(model_path);
  if (fd < 0) return Status(ErrorCode::kIoError, "--lstm: cannot create a temporary file");
  close(fd);
  const uint32_t budget = lstm.steps ? lstm.steps : LstmTrainingSteps(result->raw, links_to_come);
  std::vector<std::string> argv = {
      trainer, output, "-o", model_path, "--steps", std::to_string(budget), "--seconds", "3600",
      "--hidden", std::to_string(lstm.hidden)};
  for (const std::string& dir : common.search) argv.insert(argv.end(), {"--search", dir});
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    if (!common.verbose) {  // its summary line only with -v (on stderr)
      const int null = open("/dev/null", O_WRONLY);
      if (null >= 0) dup2(null, STDOUT_FILENO);
    } else {
      dup2(STDERR_FILENO, STDOUT_FILENO);
    }
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  int wstatus = 0;
  if (pid < 0 || waitpid(pid, &wstatus, 0) != pid || !WIFEXITED(wstatus) ||
      WEXITSTATUS(wstatus) != 0) {
    unlink(model_path);
    return Status(ErrorCode::kUnsupported, "--lstm: " + trainer + " failed on " + output);
  }
  auto model = ReadLstmModelFile(model_path);
  unlink(model_path);
  if (!model.ok()) return model.status();
  LstmChoice with = lstm;
  with.own = std::make_shared<const LstmModel>(std::move(model).value());
  const std::string trial = output + ".lstm-trial";
  CompressResult r;
  Common quiet = common;
  quiet.quiet = true;
  quiet.force = true;
  Status s = CompressOne(input, trial, parent_path, nullptr, keyframe_interval, encode, write,
                         quiet, nullptr, &r, with);
  if (!s.ok()) {
    unlink(trial.c_str());
    return s;
  }
  const double seconds_spent =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Keep the model when it pays over the group: what the link gains without counting the
  // model (its levels coded smaller), plus, for each later link of the group that takes the
  // model from its parent, 30 % of that (the gain falls along the chain as training moves
  // away from the link the model learned from: docs/lstm.md measured a third), against the
  // model's bytes, which the group pays once.
  const double model_bytes = double(with.own->StoredBytes());
  const double gross = double(result->stored) - (double(r.stored) - model_bytes);
  const double later = links_to_come > 1 ? 0.3 * double(links_to_come - 1) : 0.0;
  const bool keep = r.lstm_chunks > 0 && gross > 0 && gross * (1.0 + later) > model_bytes;
  char buf[160];
  if (keep) {
    if (rename(trial.c_str(), output.c_str()) != 0)
      return Status(ErrorCode::kIoError, output + ": cannot replace: " + std::strerror(errno));
    snprintf(buf, sizeof buf, " (trained %.1f s; this link %+lld bytes, its streams -%.0f)",
             seconds_spent, static_cast<long long>(r.stored) - static_cast<long long>(result->stored),
             gross);
    result->lstm = r.lstm + buf;
    result->lstm_chunks = r.lstm_chunks;
    result->stored = r.stored;
  } else {
    unlink(trial.c_str());
    snprintf(buf, sizeof buf, "model trained (%.1f s), not kept: streams -%.0f bytes, model %.0f",
             seconds_spent, gross, model_bytes);
    result->lstm = buf;
  }
  result->seconds += seconds_spent;
  return Status::Ok();
}

void PrintCompressed(FILE* out, const std::string& input, const std::string& output,
                     const CompressResult& r, const WriteOptions& write) {
  std::string mode = "lossless";
  if (r.report.quantized > 0 && write.rd) {
    const RdOptions& rd = *write.rd;
    char buf[200];
    snprintf(buf, sizeof buf, "lossy: rate-distortion strength=%g steps=%g,%g,%g%s, %zu tensors "
             "as levels", rd.strength, rd.weight_step, rd.moment1_step, rd.moment2_step,
             rd.weights_only_step ? (" weights-step=" + Number(*rd.weights_only_step)).c_str() : "",
             r.report.quantized);
    mode = buf;
  } else if (r.report.quantized > 0) {
    const ExcpOptions& e = *write.excp;
    char buf[200];
    snprintf(buf, sizeof buf, "lossy: ExCP alpha=%g beta=%g bits=%u%s%s%s, %zu tensors shrunk",
             e.alpha, e.beta, e.bits, e.k_at_cap ? " k=2.5" : "",
             e.v_residual ? "" : " v-direct",
             e.fallback_k ? (" fallback-k=" + Number(*e.fallback_k)).c_str() : "",
             r.report.quantized);
    mode = buf;
  }
  // Weights a lossy run left exact, so that nobody takes "lossless" for an accident.
  if ((write.excp || write.rd) && r.report.without_adam_v > 0)
    mode += ", " + std::to_string(r.report.without_adam_v) +
            " weights without Adam's v kept lossless";
  if (!r.lstm.empty())
    mode += ", LSTM: " + r.lstm + ", " + std::to_string(r.lstm_chunks) + " chunks use it";
  fprintf(out, "%s => %s: %s -> %s (%s, %s, %s), %.2f s, %s/s\n", input.c_str(), output.c_str(),
          HumanBytes(r.raw).c_str(), HumanBytes(r.stored).c_str(), Ratio(r.raw, r.stored).c_str(),
          mode.c_str(),
          r.depth ? ("link depth " + std::to_string(r.depth)).c_str() : "keyframe", r.seconds,
          HumanBytes(r.seconds > 0 ? uint64_t(double(r.raw) / r.seconds) : 0).c_str());
}

std::string JsonList(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + JsonQuote(items[i]);
  return s + "]";
}

std::string JsonNumber(double d) { return std::isfinite(d) ? Number(d) : "null"; }

// One line of `ckz compress --json`. `written` is the output as written (the temporary file
// when it went to standard output), read back for the coding of each lossy tensor.
void PrintCompressedJson(FILE* out, const std::string& input, const std::string& output,
                         const std::string& written, const CompressResult& r,
                         const WriteOptions& write) {
  std::string o = "{\"type\": \"checkpoint\", \"input\": " + JsonQuote(input) +
                  ", \"output\": " + JsonQuote(output) +
                  ", \"step\": " + (r.step ? std::to_string(*r.step) : "null") +
                  ", \"input_bytes\": " + std::to_string(r.raw) +
                  ", \"output_bytes\": " + std::to_string(r.stored) + ", \"ratio\": " +
                  (r.stored ? JsonNumber(double(r.raw) / double(r.stored)) : "null") +
                  ", \"seconds\": " + JsonNumber(r.seconds) +
                  ", \"link_depth\": " + std::to_string(r.depth) +
                  ", \"lossless\": " + (r.report.quantized == 0 ? "true" : "false") + ", \"excp\": ";
  if (write.excp) {
    const ExcpOptions& e = *write.excp;
    o += "{\"alpha\": " + JsonNumber(e.alpha) + ", \"beta\": " + JsonNumber(e.beta) +
         ", \"bits\": " + std::to_string(e.bits) + ", \"k_at_cap\": " +
         (e.k_at_cap ? "true" : "false") + ", \"v_residual\": " + (e.v_residual ? "true" : "false") +
         ", \"fallback_k\": " + (e.fallback_k ? JsonNumber(*e.fallback_k) : "null") + "}";
  } else {
    o += "null";
  }
  o += ", \"rd\": ";
  if (write.rd) {
    const RdOptions& rd = *write.rd;
    o += "{\"strength\": " + JsonNumber(rd.strength) + ", \"weight_step\": " +
         JsonNumber(rd.weight_step) + ", \"moment1_step\": " + JsonNumber(rd.moment1_step) +
         ", \"moment2_step\": " + JsonNumber(rd.moment2_step) + ", \"rdoq_lambda\": " +
         JsonNumber(rd.rdoq_lambda) + ", \"weights_only_step\": " +
         (rd.weights_only_step ? JsonNumber(*rd.weights_only_step) : "null") + "}";
  } else {
    o += "null";
  }
  o += ", \"lossy_tensors\": [";
  if (r.report.quantized > 0) {
    auto file = OpenCkzFile(written);
    if (file.ok()) {
      const Archive& a = (*file)->archive;
      bool first = true;
      for (size_t t = 0; t < a.tensors.size(); ++t) {
        if (!a.tensors[t].quantization) continue;
        o += std::string(first ? "" : ", ") + "{\"name\": " + JsonQuote(a.tensors[t].name) +
             ", \"role\": \"" + RoleName(a.tensors[t].role) + "\", \"coding\": " +
             JsonQuote(TensorCodingText(a, t)) + "}";
        first = false;
      }
    }
  }
  o += "], \"kept_lossless\": " + JsonList(r.report.lossless) +
       ", \"weights_without_adam_v\": " + std::to_string(r.report.without_adam_v) +
       ", \"lstm\": " + (r.lstm.empty() ? std::string("null") : JsonQuote(r.lstm)) +
       ", \"lstm_chunks\": " + std::to_string(r.lstm_chunks) +
       ", \"notes\": " + JsonList(r.notes) + "}";
  fprintf(out, "%s\n", o.c_str());
}

int Compress(Args& args, const Common& common) {
  const auto out = args.Value({"-o", "--output"});
  const auto ref = args.Value({"--ref"});
  const auto level = args.Value({"-l", "--level"});
  const auto chunk = args.Value({"--chunk-size"});
  const auto interval_text = args.Value({"--keyframe-interval"});
  const auto segment_text = args.Value({"--segment"});
  const bool lossless = args.Flag({"--lossless"});
  const bool json = args.Flag({"--json"});
  const bool keep_going = args.Flag({"--keep-going"});
  const auto alpha = args.Value({"--alpha"});
  const auto beta = args.Value({"--beta"});
  const auto bits = args.Value({"--bits"});
  const auto entropy = args.Value({"--entropy"});
  const bool k_at_cap = args.Flag({"--k-at-cap"});
  const bool v_direct = args.Flag({"--v-direct"});
  const auto fallback_k = args.Value({"--fallback-k"});
  const bool excp_flag = args.Flag({"--excp"});
  const auto strength = args.Value({"--strength"});
  const auto quality = args.Value({"-Q", "--quality"});
  const auto rd_steps = args.Value({"--rd-steps"});
  const auto rdoq = args.Value({"--rdoq"});
  const auto weights_step = args.Value({"--weights-step"});
  LstmChoice lstm;
  lstm.enabled = args.Flag({"--lstm"});
  const auto lstm_hidden = args.Value({"--lstm-hidden"});
  const auto lstm_steps = args.Value({"--lstm-steps"});
  std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.empty()) return Usage("compress needs an input");

  EncodeOptions encode;
  encode.threads = common.threads;
  uint64_t v = 0;
  if (level) {
    if (!ParseUint(*level, &v) || v < 1 || v > 22) return Usage("--level must be 1..22");
    encode.zstd_level = int(v);
  }
  if (chunk) {
    if (!ParseUint(*chunk, &v) || v < 1 || v > kMaxChunkRawBytes)
      return Usage("--chunk-size must be 1.." + std::to_string(kMaxChunkRawBytes));
    encode.chunk_bytes = v;
  }
  uint64_t interval = 10;
  if (interval_text && (!ParseUint(*interval_text, &interval) || interval < 1))
    return Usage("--keyframe-interval must be >= 1");
  // --segment I/N: this run's share of the keyframe groups (one keyframe and its links).
  uint64_t segment = 0, segments = 0;
  if (segment_text) {
    const size_t slash = segment_text->find('/');
    if (slash == std::string::npos || !ParseUint(segment_text->substr(0, slash), &segment) ||
        !ParseUint(segment_text->substr(slash + 1), &segments) || segments < 1 || segment < 1 ||
        segment > segments)
      return Usage("--segment needs I/N with 1 <= I <= N");
  }
  WriteOptions write;
  const bool excp_options = alpha || beta || bits || k_at_cap || v_direct || fallback_k;
  const bool rd_options = strength || quality || rd_steps || rdoq || weights_step;
  if (excp_options && !excp_flag && !lossless)
    return Usage("--alpha, --beta, --bits, --k-at-cap, --v-direct and --fallback-k are ExCP "
                 "options: add --excp");
  if (rd_options && (excp_flag || lossless))
    return Usage("--quality, --strength, --rd-steps, --rdoq and --weights-step set the "
                 "rate-distortion coding: not with --excp or --lossless");
  if (quality && strength) return Usage("--quality and --strength set the same thing");
  if (!lossless && !excp_flag) {
    RdOptions rd;
    if (quality) {
      if (!ParseUint(*quality, &v) || v < 1 || v > 9) return Usage("--quality must be 1..9");
      rd.strength = StrengthOfQuality(int(v));
    }
    if (strength && !ParsePositive(*strength, &rd.strength))
      return Usage("--strength needs a positive number");
    if (rd_steps) {
      double w = 0, m = 0, v2 = 0;
      char tail = 0;
      if (sscanf(rd_steps->c_str(), "%lf,%lf,%lf%c", &w, &m, &v2, &tail) != 3 || !(w > 0) ||
          !(m > 0) || !(v2 > 0))
        return Usage("--rd-steps needs three positive numbers W,M,V");
      rd.weight_step = w, rd.moment1_step = m, rd.moment2_step = v2;
    }
    if (rdoq) {
      char* end = nullptr;
      rd.rdoq_lambda = strtod(rdoq->c_str(), &end);
      if (*end || !(rd.rdoq_lambda >= 0) || !std::isfinite(rd.rdoq_lambda))
        return Usage("--rdoq needs a number >= 0");
    }
    if (weights_step) {
      double e = 0;
      if (!ParsePositive(*weights_step, &e)) return Usage("--weights-step needs a positive number");
      rd.weights_only_step = e;
    }
    write.rd = rd;
  } else if (!lossless) {
    ExcpOptions e;
    if (alpha && !ParsePositive(*alpha, &e.alpha)) return Usage("--alpha needs a positive number");
    if (beta && !ParsePositive(*beta, &e.beta)) return Usage("--beta needs a positive number");
    if (bits && (!ParseUint(*bits, &v) || v < 2 || v > 8)) return Usage("--bits must be 2..8");
    if (bits) e.bits = unsigned(v);
    e.k_at_cap = k_at_cap;
    e.v_residual = !v_direct;
    if (fallback_k) {
      double k = 0;
      if (!ParsePositive(*fallback_k, &k)) return Usage("--fallback-k needs a positive number");
      e.fallback_k = k;
    }
    write.excp = e;
  } else if (excp_options || excp_flag) {
    return Usage("--excp, --alpha, --beta, --bits, --k-at-cap, --v-direct and --fallback-k "
                 "shrink (lossy); not with --lossless");
  }
  if ((lstm.enabled || lstm_hidden || lstm_steps) && !write.rd && !write.excp)
    return Usage("--lstm codes the levels or indices of lossy links: not with --lossless");
  if (lstm_steps) {
    if (!lstm.enabled) return Usage("--lstm-steps goes with --lstm");
    if (!ParseUint(*lstm_steps, &v) || v < 1 || v > 100000)
      return Usage("--lstm-steps is 1..100000");
    lstm.steps = uint32_t(v);
  }
  if (lstm_hidden) {
    if (!lstm.enabled) return Usage("--lstm-hidden goes with --lstm");
    if (!ParseUint(*lstm_hidden, &v) || v < 8 || v > 32 || v % 8)
      return Usage("--lstm-hidden is 8, 16, 24 or 32");
    lstm.hidden = uint32_t(v);
  }
  if (entropy) {
    // Indices of lossy tensors; zstd and cm also pick the coding of lossless F32 values.
    if (*entropy == "zstd") {
      encode.index_codec = StreamCodec::kZstd;
      encode.float_codec = StreamCodec::kZstd;
    } else if (*entropy == "packed") {
      encode.index_codec = StreamCodec::kPacked;
    } else if (*entropy == "cm") {
      encode.index_codec = StreamCodec::kCm;
      encode.float_codec.reset();  // cmf where it codes a sample smaller
    } else {
      return Usage("--entropy is zstd, packed or cm");
    }
  }

  // One folder that is not a checkpoint but holds several: a history.
  if (inputs.size() == 1 && inputs[0] != "-" && IsDir(inputs[0])) {
    const auto single = LoadCheckpoint(inputs[0]);
    if (!single.ok() && single.status().code() == ErrorCode::kUnsupportedInput) {
      std::string dir = inputs[0];
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      History history;
      Status s = ScanHistory(dir, &history);
      if (!s.ok()) return Fail(s);
      if (history.members.size() > 1) {
        inputs = history.members;
        for (const std::string& o : history.others) Note(common, dir + ": not compressed: " + o);
      }
    }
  }
  if (inputs.size() > 1 && std::find(inputs.begin(), inputs.end(), "-") != inputs.end())
    return Usage("'-' (standard input) is a single input");
  if (segment_text && inputs.size() == 1)
    return Usage("--segment applies to a history of several checkpoints");

  if (inputs.size() == 1) {
    std::string input = inputs[0];
    while (input.size() > 1 && input.back() == '/') input.pop_back();
    const bool piped_in = IsStream(input);
    const std::string target = out ? *out : input == "-" ? "-" : input + ".ckz";
    const bool to_stdout = IsStream(target);
    if (target == "-" && isatty(STDOUT_FILENO))
      return Usage("refusing to write compressed data to a terminal (redirect it, or give -o FILE)");
    Spool in_spool, out_spool;
    std::string source = input, written = target;
    if (piped_in) {
      auto path = in_spool.From(input, StreamName(input));
      if (!path.ok()) return Fail(path.status());
      source = *path;
    }
    if (to_stdout) {
      auto path = out_spool.Path("stdout.ckz");
      if (!path.ok()) return Fail(path.status());
      written = *path;
    }
    CompressResult r;
    Status s = CompressOne(source, written, ref ? *ref : "", nullptr, interval, encode, write,
                           common, nullptr, &r, lstm);
    if (s.ok() && lstm.enabled && r.depth > 0 && r.lstm.empty())
      s = TrainLstmFor(source, written, ref ? *ref : "", interval, 1, encode, write, common,
                       lstm, &r);
    if (s.ok() && to_stdout) s = CopyToStream(written, target);
    if (!s.ok()) return Fail(s);
    FILE* report = to_stdout ? stderr : stdout;  // the stream may be stdout (/dev/stdout)
    const std::string shown_in = input == "-" ? "(stdin)" : input;
    const std::string shown_out = target == "-" ? "(stdout)" : target;
    if (json)
      PrintCompressedJson(report, shown_in, shown_out, written, r, write);
    else if (!common.quiet)
      PrintCompressed(report, shown_in, shown_out, r, write);
    if (common.verbose && !to_stdout) return ExitCodeFor(PrintInfo(target, {}));
    return kExitOk;
  }

  // A history: a chain, each link against the previous checkpoint, keyframes every N.
  if (!out) return Usage("compressing several inputs needs -o OUTDIR");
  if (*out == "-") return Usage("a history is several .ckz files: -o must be a folder");
  if (ref) return Usage("--ref applies to a single input; a history chains itself");

  // Every input is read before anything is written: one that cannot be read stops the run
  // here (or, with --keep-going, is left out with a note). What each holds is kept to
  // recognise the outputs of an earlier run.
  std::vector<std::string> members;
  std::vector<Signature> signatures;
  for (const std::string& input : inputs) {
    auto in = LoadCheckpoint(input);
    if (!in.ok()) {
      if (!keep_going)
        return Fail(Status(in.status().code(),
                           in.status().message() +
                               "; nothing was written (--keep-going leaves it out and goes on)"));
      Note(common, "left out: " + ErrorText(in.status()));
      continue;
    }
    members.push_back(input);
    signatures.push_back(
        SignatureOf(in->files, in->step, [&](uint32_t t) { return uint64_t(in->tensors[t].data.size); }));
  }
  if (members.empty()) return Fail(Status(ErrorCode::kUnsupportedInput, "no checkpoint to compress"));

  if (!IsDir(*out) && mkdir(out->c_str(), 0755) != 0)
    return Fail(Status(ErrorCode::kIoError, *out + ": cannot create folder: " + std::strerror(errno)));
  std::vector<std::string> outputs;
  for (const std::string& member : members) outputs.push_back(*out + "/" + BaseName(member) + ".ckz");
  // The runs of members this run compresses, each a chain that starts from a keyframe: the whole
  // history, or with --segment the keyframe groups (members [gK, gK + K)) of this segment.
  struct Run {
    size_t begin, end;
    size_t done;  // members [begin, done) are there already
  };
  std::vector<Run> runs;
  if (segments == 0) {
    runs.push_back({0, members.size(), 0});
  } else {
    const uint64_t groups = (members.size() + interval - 1) / interval;
    const uint64_t first = groups * (segment - 1) / segments, last = groups * segment / segments;
    for (uint64_t g = first; g < last; ++g)
      runs.push_back({size_t(g * interval), size_t(std::min<uint64_t>((g + 1) * interval, members.size())), 0});
    if (runs.empty() && !common.quiet)
      Note(common, "segment " + *segment_text + " has no keyframe group (" + std::to_string(groups) +
                       " groups of " + std::to_string(interval) + " checkpoints)");
  }
  // An earlier run's outputs: a chain continues after its last one, nothing is rewritten.
  size_t done = 0;
  for (Run& run : runs) {
    run.done = run.begin;
    for (size_t i = run.begin; i < run.end; ++i)
      if (!common.force && Exists(outputs[i])) run.done = i + 1;
    done += run.done - run.begin;
    for (size_t i = run.begin; i < run.done; ++i) {
      if (!Exists(outputs[i]))
        return Fail(Status(ErrorCode::kIoError,
                           outputs[i] + " is missing, but later checkpoints of the history are in " +
                               *out + ": a chain only grows at its end (compress " + members[i] +
                               " on its own, or all again with -f)"));
      ChainOptions chain;  // opened with its chain: its prologs decode against its parents'
      chain.search_dirs = common.search;
      auto there = ChainReader::Open(outputs[i], chain);
      if (!there.ok()) return Fail(there.status());
      const Archive& a = (*there)->archive();
      if (!SameCheckpoint(SignatureOf(a.files, a.step, [&](uint32_t t) { return a.tensors[t].byte_length; }),
                          signatures[i]))
        return Fail(Status(ErrorCode::kIoError,
                           outputs[i] + ": already exists and holds another checkpoint than " +
                               members[i] + " (use -f to overwrite)"));
    }
  }

  FILE* report = stdout;
  uint64_t total_raw = 0, total_stored = 0;
  double total_seconds = 0;
  DecodedCheckpoint previous_decoded, current_decoded;
  size_t considered = 0;
  for (const Run& run : runs) {
    std::string previous;  // the run's first member is a keyframe
    bool previous_in_memory = false;
    bool lstm_tried = false;  // --lstm: a model was trained for this keyframe group
    for (size_t i = run.begin; i < run.end; ++i) {
      ++considered;
      const std::string& input = members[i];
      const std::string& output = outputs[i];
      if (i < run.done) {
        if (json)
          fprintf(report, "{\"type\": \"checkpoint\", \"input\": %s, \"output\": %s, \"existing\": true}\n",
                  JsonQuote(input).c_str(), JsonQuote(output).c_str());
        else if (!common.quiet)
          fprintf(report, "%s => %s: there already\n", input.c_str(), output.c_str());
        previous = output;
        continue;
      }
      CompressResult r;
      // What decoders reconstruct, the next link's reference: beyond a budget in a temporary
      // file, so memory does not grow with the checkpoint. The last checkpoint needs none.
      const bool last = i + 1 == run.end;
      current_decoded.SpillOver(kDecodedMemoryBytes);
      Status s = CompressOne(input, output, previous,
                             previous_in_memory ? &previous_decoded : nullptr, interval, encode,
                             write, common, last ? nullptr : &current_decoded, &r, lstm);
      // The parent's indices were released as the link was written: a trial against the
      // parent decodes it from its file.
      // A model is trained once per keyframe group, on the first link this run writes in it:
      // when it did not pay there, the group's later links do without.
      if (r.depth == 0) lstm_tried = false;
      if (s.ok() && lstm.enabled && r.depth > 0 && r.lstm.empty() && !lstm_tried) {
        lstm_tried = true;
        const uint64_t group_left = std::min<uint64_t>(run.end - i, interval - r.depth);
        s = TrainLstmFor(input, output, previous, interval, group_left, encode, write, common,
                         lstm, &r);
      }
      if (!s.ok()) return Fail(s);
      previous_decoded = std::move(current_decoded);
      current_decoded = DecodedCheckpoint();
      previous_in_memory = !last;
      if (json)
        PrintCompressedJson(report, input, output, output, r, write);
      else if (!common.quiet)
        PrintCompressed(report, input, output, r, write);
      total_raw += r.raw;
      total_stored += r.stored;
      total_seconds += r.seconds;
      previous = output;
    }
  }
  const size_t added = considered - done;
  if (json)
    fprintf(report,
            "{\"type\": \"history\", \"output\": %s, \"checkpoints\": %zu, \"added\": %zu, "
            "\"segment\": %s, \"input_bytes\": %llu, \"output_bytes\": %llu, \"ratio\": %s, "
            "\"seconds\": %s}\n",
            JsonQuote(*out).c_str(), considered, added,
            segment_text ? JsonQuote(*segment_text).c_str() : "null",
            static_cast<unsigned long long>(total_raw),
            static_cast<unsigned long long>(total_stored),
            total_stored ? JsonNumber(double(total_raw) / double(total_stored)).c_str() : "null",
            JsonNumber(total_seconds).c_str());
  else if (!common.quiet)
    fprintf(report, "%zu checkpoints%s%s: %s -> %s (%s), %.2f s\n", added,
            done ? (" added after " + std::to_string(done) + " already there").c_str() : "",
            segment_text ? (" (segment " + *segment_text + ": " + std::to_string(considered) +
                            " of " + std::to_string(members.size()) + " checkpoints)").c_str() : "",
            HumanBytes(total_raw).c_str(), HumanBytes(total_stored).c_str(),
            Ratio(total_raw, total_stored).c_str(), total_seconds);
  return kExitOk;
}

// ---- decompress and verify ----

// -o naming another format than the checkpoint's one file (x.pt -> y.safetensors, or the
// reverse) asks for a conversion.
std::optional<SourceFormat> ConversionFor(const Archive& a, const std::string& output) {
  std::optional<SourceFormat> wanted;
  if (EndsWith(output, ".safetensors")) wanted = SourceFormat::kSafetensors;
  if (EndsWith(output, ".pt") || EndsWith(output, ".pth") || EndsWith(output, ".bin"))
    wanted = SourceFormat::kTorchZip;
  const SourceFormat recorded = a.files.empty() ? SourceFormat::kSafetensors : a.files[0].format;
  if (!wanted || (a.files.size() <= 1 && *wanted == recorded)) return std::nullopt;
  return wanted;
}

std::string DecodesText(const ChainReader& reader, bool cached) {
  if (cached) return "1 decode: its parent was decoded just before";
  const size_t d = reader.depth() + 1;
  return std::to_string(d) + (d == 1 ? " decode" : " decodes") + ": depth " +
         std::to_string(reader.depth());
}

int Decompress(Args& args, const Common& common) {
  const auto out = args.Value({"-o", "--output"});
  const auto out_dir = args.Value({"--output-dir"});
  const auto ref = args.Value({"--ref"});
  std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.empty()) return Usage("decompress needs a .ckz file");
  if (out && out_dir) return Usage("give -o or --output-dir, not both");
  if (ref && inputs.size() > 1) return Usage("--ref applies to a single input");
  if (inputs.size() > 1 && std::find(inputs.begin(), inputs.end(), "-") != inputs.end())
    return Usage("'-' (standard input) is a single input");
  const bool piped_in = inputs.size() == 1 && IsStream(inputs[0]);
  const std::string stream_out = out ? *out : inputs[0] == "-" && !out_dir ? "-" : "";
  const bool to_stdout = !stream_out.empty() && IsStream(stream_out);
  if (to_stdout && inputs.size() > 1) return Usage("only one input can go to standard output");
  if (stream_out == "-" && isatty(STDOUT_FILENO))
    return Usage("refusing to write a checkpoint to a terminal (redirect it, or give -o FILE)");
  if (out && !to_stdout && inputs.size() > 1 && !IsDir(*out))
    return Usage("with several inputs, -o must be an existing folder");
  if (out_dir && !IsDir(*out_dir) && mkdir(out_dir->c_str(), 0755) != 0)
    return Fail(Status(ErrorCode::kIoError, *out_dir + ": cannot create folder: " + std::strerror(errno)));

  Spool in_spool, out_spool;
  std::vector<std::string> paths = inputs;
  ChainOptions chain;
  chain.search_dirs = common.search;
  if (ref) chain.parent_path = *ref;
  if (piped_in) {
    auto path = in_spool.From(inputs[0], StreamName(inputs[0]) + ".ckz");
    if (!path.ok()) return Fail(path.status());
    paths[0] = *path;
    chain.search_dirs.push_back(".");  // a link from standard input: its parents are here
  }
  FILE* report = to_stdout ? stderr : stdout;  // the stream may be stdout (/dev/stdout)
  int code = kExitOk;
  ForEachInChainOrder(
      paths, chain,
      [&](size_t i, ChainReader& reader, bool cached) -> Status {
        const std::string& input = inputs[i];
        const Archive& a = reader.archive();
        std::string bare_name = piped_in ? StreamName(input) : BaseName(input);
        if (EndsWith(bare_name, ".ckz")) bare_name.resize(bare_name.size() - 4);
        // Where it goes: -o, else --output-dir (the checkpoint's own file names; with several
        // inputs, a folder of its own when it has several files), else FILE without its .ckz.
        std::string output;
        bool into_dir = false;
        if (to_stdout) {
          if (a.files.size() > 1)
            return Status(ErrorCode::kInvalidArgument,
                          input + " holds a checkpoint of " + std::to_string(a.files.size()) +
                              " files, which cannot go to standard output (use -o FOLDER or "
                              "--output-dir DIR)");
          auto path = out_spool.Path(a.files.empty() ? "stdout.safetensors" : BaseName(a.files[0].path));
          if (!path.ok()) return path.status();
          output = *path;
        } else if (out_dir) {
          into_dir = a.files.size() <= 1 || inputs.size() == 1;
          output = into_dir ? *out_dir : *out_dir + "/" + bare_name;
        } else if (out && inputs.size() == 1) {
          output = *out;
        } else {
          if (!EndsWith(input, ".ckz"))
            return Status(ErrorCode::kInvalidArgument,
                          input + ": name does not end in .ckz; give the output with -o");
          output = input.substr(0, input.size() - 4);
          if (out) output = *out + "/" + BaseName(output);
        }
        if (!EndsWith(bare_name, ".safetensors")) bare_name += ".safetensors";
        const auto start = std::chrono::steady_clock::now();
        const uint64_t total = a.TotalRawBytes();
        Progress progress(BaseName(input), total, !common.quiet);
        RestoreOptions options;
        options.overwrite = common.force;
        options.threads = common.threads;
        options.progress = [&](uint64_t done) { progress.Update(done); };
        options.note = [&](const std::string& note) { Note(common, note); };
        if (out && !out_dir && !to_stdout) options.convert_to = ConversionFor(a, output);
        Status s = into_dir ? RestoreFilesInto(reader, output, bare_name, options)
                            : RestoreCheckpoint(reader, output, options);
        progress.Finish();
        if (s.ok() && to_stdout) s = CopyToStream(output, stream_out);
        if (!s.ok()) return s;
        std::string shown = output;
        if (to_stdout) shown = stream_out == "-" ? "(stdout)" : stream_out;
        if (into_dir) shown = output + "/" + (a.files.empty() ? bare_name : a.files[0].path);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!common.quiet)
          fprintf(report, "%s => %s: %s restored (%s), %.2f s, %s/s\n",
                  input == "-" ? "(stdin)" : input.c_str(), shown.c_str(), HumanBytes(total).c_str(),
                  DecodesText(reader, cached).c_str(), seconds,
                  HumanBytes(seconds > 0 ? uint64_t(double(total) / seconds) : 0).c_str());
        return Status::Ok();
      },
      [&](size_t, const Status& s) {
        code = s.code() == ErrorCode::kInvalidArgument ? Usage(s.message()) : Fail(s);
        return false;
      });
  return code;
}

int Verify(Args& args, const Common& common) {
  std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.empty()) return Usage("verify needs a .ckz file");
  ChainOptions chain;
  chain.search_dirs = common.search;
  int exit_code = kExitOk;
  ForEachInChainOrder(
      inputs, chain,
      [&](size_t i, ChainReader& reader, bool cached) -> Status {
        Progress progress(BaseName(inputs[i]), reader.archive().TotalRawBytes(), !common.quiet);
        auto report = VerifyChain(reader, common.threads,
                                  [&](uint64_t done) { progress.Update(done); });
        progress.Finish();
        if (!report.ok()) return report.status();
        if (!common.quiet)
          printf("%s: OK (%llu tensors, %llu chunks, %s, content id %s, %s)\n", inputs[i].c_str(),
                 static_cast<unsigned long long>(report->tensors),
                 static_cast<unsigned long long>(report->chunks),
                 HumanBytes(report->raw_bytes).c_str(), ContentIdHex(report->computed).c_str(),
                 DecodesText(reader, cached).c_str());
        return Status::Ok();
      },
      [&](size_t i, const Status& s) {
        printf("%s: FAILED\n", inputs[i].c_str());
        Fail(s);
        if (exit_code == kExitOk) exit_code = ExitCodeFor(s);
        return true;
      });
  return exit_code;
}

int Report(Args& args, const Common& common) {
  ReportOptions options;
  options.json = args.Flag({"--json"});
  options.threads = common.threads;
  if (auto against = args.Value({"--against"})) options.against = *against;
  std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.empty()) return Usage("report needs a folder or .ckz files");
  ChainOptions chain;
  chain.search_dirs = common.search;
  return PrintChainReport(inputs, options, chain);
}

int Info(Args& args) {
  InfoOptions options;
  options.json = args.Flag({"--json"});
  options.jsonl = args.Flag({"--jsonl"});
  options.chunks = args.Flag({"--chunks"});
  std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.empty()) return Usage("info needs a .ckz file");
  return PrintInfoFiles(inputs, options, "ckz");
}

void PrintUsage(FILE* out) {
  fprintf(out, "ckz - compress deep-learning training checkpoints (CKZ format %u.%u)\n",
          kFormatMajor, kFormatMinor);
  fputs(kUsage, out);
}

}  // namespace

int Main(int argc, char** argv) {
  LineBufferStdout();
  if (argc < 2) {
    PrintUsage(stderr);
    return kExitUsage;
  }
  const std::string command = argv[1];
  if (command == "-h" || command == "--help" || command == "help") {
    PrintUsage(stdout);
    fputs(kExitCodeHelp, stdout);
    return kExitOk;
  }
  if (command == "-V" || command == "--version") {
    printf("ckz %s (CKZ format %u.%u)\n", CKZ_VERSION, kFormatMajor, kFormatMinor);
    return kExitOk;
  }
  Args args(argc, argv, 2);
  if (args.Flag({"-h", "--help"})) {
    PrintUsage(stdout);
    fputs(kExitCodeHelp, stdout);
    return kExitOk;
  }
  Common common;
  common.force = args.Flag({"-f", "--force"});
  common.quiet = args.Flag({"-q", "--quiet"});
  common.verbose = args.Flag({"-v", "--verbose"});
  if (const auto t = args.Value({"-T", "--threads"})) {
    uint64_t n;
    if (!ParseUint(*t, &n) || n > 1024) return Usage("-T needs a thread count (0 = all cores)");
    common.threads = n == 0 ? int(std::thread::hardware_concurrency()) : int(n);
    common.threads = std::max(common.threads, 1);
  }
  common.search = args.Values({"--search"});

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGHUP, OnSignal);

  if (command == "compress" || command == "c") return Compress(args, common);
  if (command == "decompress" || command == "d" || command == "x") return Decompress(args, common);
  if (command == "verify" || command == "t") return Verify(args, common);
  if (command == "info" || command == "i") return Info(args);
  if (command == "report") return Report(args, common);
  return Usage("unknown command '" + command + "'");
}

}  // namespace ckz::cli

namespace {

// Checkpoints of gigabytes make ckz allocate arrays of hundreds of megabytes (levels, decoded
// tensors, windows), and the page faults of their first touch were a third of a link's
// compress time on a VM (docs/large-checkpoints.md). glibc backs such allocations with
// transparent huge pages (512x fewer faults) when its `glibc.malloc.hugetlb` tunable is 1, and
// reads tunables only at start: so ckz starts itself again once with the tunable added, unless
// the environment already sets it (GLIBC_TUNABLES=glibc.malloc.hugetlb=0 turns this off). The
// same process (pid, descriptors, signals) goes on; if the exec fails, it goes on unchanged.
void RestartWithHugePages(char** argv) {
#if defined(__linux__) && defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const std::string have = tunables ? tunables : "";
  if (have.find("glibc.malloc.hugetlb") != std::string::npos) return;
  const std::string wanted = (have.empty() ? "" : have + ":") + "glibc.malloc.hugetlb=1";
  if (setenv("GLIBC_TUNABLES", wanted.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Not restarted: leave the environment as it was for the programs ckz runs.
  if (tunables) setenv("GLIBC_TUNABLES", have.c_str(), 1); else unsetenv("GLIBC_TUNABLES");
#else
  (void)argv;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  RestartWithHugePages(argv);
  return ckz::cli::Main(argc, argv);
}
