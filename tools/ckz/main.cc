// ckz: compress, decompress and verify training checkpoints. A thin layer over the public API.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "ckz/checkpoint.h"
#include "ckz/io.h"
#include "ckz/writer.h"
#include "cli.h"

namespace ckz::cli {
namespace {

// The first line (name and format version) is printed by PrintUsage.
const char kUsage[] =
    "\n"
    "Usage:\n"
    "  ckz compress INPUT [-o OUT.ckz] [--ref PARENT.ckz]\n"
    "  ckz compress INPUT... -o OUTDIR        a training history, compressed as a chain\n"
    "  ckz decompress FILE.ckz... [-o OUT]\n"
    "  ckz verify FILE.ckz...\n"
    "  ckz info FILE.ckz [--json] [--chunks]  (same as ckzinfo)\n"
    "\n"
    "INPUT is a checkpoint: a .safetensors file; a torch.save .pt/.pth/.bin file (read\n"
    "without running pickle code); a model.safetensors.index.json with its shards; or a\n"
    "checkpoint folder (a shard index, a Hugging Face Trainer checkpoint-N folder, or one\n"
    "checkpoint file with the files beside it: every file is restored). A folder of several\n"
    "checkpoint files (or of checkpoint-N folders) is a history: its members are taken in\n"
    "natural name order and compressed as a chain.\n"
    "\n"
    "compress:\n"
    "  -o, --output PATH        output file (default INPUT.ckz); a folder for a history\n"
    "  --ref PARENT.ckz         store INPUT as a link predicted from PARENT (its chain is\n"
    "                           found beside it)\n"
    "  --keyframe-interval N    at most N-1 links between self-contained keyframes, so any\n"
    "                           step restores with at most N decodes (default 10; 1 = all\n"
    "                           keyframes)\n"
    "  --lossless               keep every tensor bit-exact. Without it, links are shrunk\n"
    "                           the ExCP way (lossy): weight residuals pruned and quantized,\n"
    "                           optimizer moments pruned jointly; keyframes stay lossless\n"
    "  --alpha A, --beta B      ExCP pruning strengths (default 5e-5, 2)\n"
    "  --bits N                 index width, 2^N-1 centres per tensor (default 4, 2..8)\n"
    "  --entropy zstd|packed|cm coding of the indices: zstd, packed bits, or the context-\n"
    "                           model arithmetic coder (default: the smallest per chunk).\n"
    "                           Lossless F32 values of links: byte planes and zstd (zstd,\n"
    "                           the default), or the cmf context model where it codes a\n"
    "                           sample of the tensor smaller (cm: 2-5 % smaller, decodes\n"
    "                           ~20x slower)\n"
    "  --k-at-cap               prune weights with k = 2.5 (ExCP's cap) whatever mean(v)\n"
    "  --fallback-k K           also prune weights without Adam's second moment (SGD,\n"
    "                           RMSprop, Adagrad, weights-only files) at K times the median\n"
    "                           residual, with their moments. Unbounded damage (K = 1: +46 %%\n"
    "                           val loss on an SGD history); default: keep them lossless\n"
    "  --v-direct               store Adam's v as ExCP does: pruned elements become 0\n"
    "                           (default: a residual, pruned elements keep the parent's v)\n"
    "  -l, --level N            zstd level of the entropy stage (default 3)\n"
    "  --chunk-size BYTES       decoded bytes per chunk (default: each tensor in equal chunks\n"
    "                           of at most 1048576 bytes, 262144 for lossy-coded tensors)\n"
    "decompress:\n"
    "  -o, --output PATH        output (default: FILE without .ckz); a folder when the\n"
    "                           checkpoint has several files. Naming another format than\n"
    "                           the original (.safetensors, or .pt/.pth/.bin) converts it\n"
    "  --output-dir DIR         write the checkpoint's files under DIR with their own names\n"
    "  --ref PARENT.ckz         the parent of FILE (otherwise found by content id beside\n"
    "                           FILE, under its recorded name or any other)\n"
    "  --search DIR             also look for parent files in DIR (repeatable)\n"
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
    "renamed into place when complete.\n\n";

struct Common {
  bool force = false;
  bool quiet = false;
  bool verbose = false;
  int threads = 1;
  std::vector<std::string> search;
};

void OnSignal(int sig) {
  RemovePendingTemporaryFiles();
  signal(sig, SIG_DFL);
  raise(sig);
}

int Fail(const Status& s) {
  fprintf(stderr, "ckz: %s\n", s.ToString().c_str());
  return ExitCodeFor(s);
}

int Usage(const std::string& message) {
  fprintf(stderr, "ckz: %s\nTry 'ckz --help'.\n", message.c_str());
  return kExitUsage;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "step_20" < "step_100": digit runs compare by value.
bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isdigit(uint8_t(a[i])) && isdigit(uint8_t(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && a[i2] == '0') ++i2;
      while (j2 < b.size() && b[j2] == '0') ++j2;
      size_t ie = i2, je = j2;
      while (ie < a.size() && isdigit(uint8_t(a[ie]))) ++ie;
      while (je < b.size() && isdigit(uint8_t(b[je]))) ++je;
      if (ie - i2 != je - j2) return ie - i2 < je - j2;
      const int c = a.compare(i2, ie - i2, b, j2, je - j2);
      if (c != 0) return c < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// The checkpoints of a history folder, in natural order: its checkpoint files (all of one
// kind: .safetensors or .pt/.pth), or else its subfolders that are checkpoints (a Trainer's
// checkpoint-N folders). Empty, with `problem` set, when it is neither.
std::vector<std::string> HistoryMembers(const std::string& dir, std::string* problem) {
  std::vector<std::string> safetensors, torch, folders;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name[0] == '.') continue;
      if (EndsWith(name, ".safetensors")) safetensors.push_back(name);
      else if (EndsWith(name, ".pt") || EndsWith(name, ".pth")) torch.push_back(name);
      else if (IsDir(dir + "/" + name) && LoadCheckpoint(dir + "/" + name).ok()) folders.push_back(name);
    }
    closedir(d);
  }
  if (!safetensors.empty() && !torch.empty()) {
    *problem = dir + " holds both .safetensors and .pt checkpoints: name the files to compress "
                     "(e.g. " + dir + "/*.pt)";
    return {};
  }
  std::vector<std::string> names = !safetensors.empty() ? safetensors : !torch.empty() ? torch : folders;
  std::sort(names.begin(), names.end(), NaturalLess);
  for (std::string& n : names) n = dir + "/" + n;
  return names;
}

struct CompressResult {
  uint64_t raw = 0;
  uint64_t stored = 0;
  double seconds = 0;
  uint32_t depth = 0;
  std::optional<int64_t> step;
  WriteReport report;
};

// Compresses `input` to `output`. With a `parent_path` the output is a link of that file's
// chain (or a keyframe when the chain is `keyframe_interval` long), predicted from the parent's
// decoded tensors: `previous` when given (a history keeps what it just wrote), else decoded
// from the parent's chain. `decoded` receives what decoders will get from `output`.
Status CompressOne(const std::string& input, const std::string& output,
                   const std::string& parent_path, DecodedCheckpoint* previous,
                   uint64_t keyframe_interval, const EncodeOptions& encode,
                   const WriteOptions& write, const Common& common, DecodedCheckpoint* decoded,
                   CompressResult* result) {
  const auto start = std::chrono::steady_clock::now();
  auto in = LoadCheckpoint(input);
  if (!in.ok()) return in.status().WithContext(input);
  if (!common.quiet)
    for (const std::string& note : in->notes) fprintf(stderr, "ckz: note: %s\n", note.c_str());
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
  }
  CKZ_RETURN_IF_ERROR(WriteCheckpoint(*in, reference, &writer, write, decoded, &result->report));
  auto id = writer.Finish();
  if (!id.ok()) return id.status();
  progress.Finish();
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

void PrintCompressed(const std::string& input, const std::string& output,
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
  printf("%s => %s: %s -> %s (%s, %s, %s), %.2f s, %s/s\n", input.c_str(), output.c_str(),
         HumanBytes(r.raw).c_str(), HumanBytes(r.stored).c_str(), Ratio(r.raw, r.stored).c_str(),
         mode.c_str(),
         r.depth ? ("link depth " + std::to_string(r.depth)).c_str() : "keyframe", r.seconds,
         HumanBytes(r.seconds > 0 ? uint64_t(double(r.raw) / r.seconds) : 0).c_str());
}

int Compress(Args& args, const Common& common) {
  const auto out = args.Value({"-o", "--output"});
  const auto ref = args.Value({"--ref"});
  const auto level = args.Value({"-l", "--level"});
  const auto chunk = args.Value({"--chunk-size"});
  const auto interval_text = args.Value({"--keyframe-interval"});
  const bool lossless = args.Flag({"--lossless"});
  const auto alpha = args.Value({"--alpha"});
  const auto beta = args.Value({"--beta"});
  const auto bits = args.Value({"--bits"});
  const auto entropy = args.Value({"--entropy"});
  const bool k_at_cap = args.Flag({"--k-at-cap"});
  const bool v_direct = args.Flag({"--v-direct"});
  const auto fallback_k = args.Value({"--fallback-k"});
  const bool excp_flag = args.Flag({"--excp"});
  const auto strength = args.Value({"--strength"});
  const auto rd_steps = args.Value({"--rd-steps"});
  const auto rdoq = args.Value({"--rdoq"});
  const auto weights_step = args.Value({"--weights-step"});
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
  WriteOptions write;
  const bool excp_options = alpha || beta || bits || k_at_cap || v_direct || fallback_k;
  const bool rd_options = strength || rd_steps || rdoq || weights_step;
  if (excp_options && !excp_flag && !lossless)
    return Usage("--alpha, --beta, --bits, --k-at-cap, --v-direct and --fallback-k are ExCP "
                 "options: add --excp");
  if (rd_options && (excp_flag || lossless))
    return Usage("--strength, --rd-steps, --rdoq and --weights-step set the rate-distortion "
                 "coding: not with --excp or --lossless");
  if (!lossless && !excp_flag) {
    RdOptions rd;
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
  if (inputs.size() == 1 && IsDir(inputs[0])) {
    const auto single = LoadCheckpoint(inputs[0]);
    if (!single.ok() && single.status().code() == ErrorCode::kUnsupportedInput) {
      std::string problem;
      std::vector<std::string> members = HistoryMembers(inputs[0], &problem);
      if (!problem.empty()) return Fail(Status(ErrorCode::kUnsupportedInput, problem));
      if (members.size() > 1) inputs = members;
    }
  }

  if (inputs.size() == 1) {
    std::string input = inputs[0];
    while (input.size() > 1 && input.back() == '/') input.pop_back();
    const std::string target = out ? *out : input + ".ckz";
    CompressResult r;
    Status s = CompressOne(input, target, ref ? *ref : "", nullptr, interval, encode, write,
                           common, nullptr, &r);
    if (!s.ok()) return Fail(s);
    if (!common.quiet) PrintCompressed(input, target, r, write);
    if (common.verbose) return ExitCodeFor(PrintInfo(target, {}));
    return kExitOk;
  }

  // A history: a chain, each link against the previous checkpoint, keyframes every N.
  if (!out) return Usage("compressing several inputs needs -o OUTDIR");
  if (ref) return Usage("--ref applies to a single input; a history chains itself");
  if (!IsDir(*out) && mkdir(out->c_str(), 0755) != 0)
    return Fail(Status(ErrorCode::kIoError, *out + ": cannot create folder: " + std::strerror(errno)));
  uint64_t total_raw = 0, total_stored = 0;
  double total_seconds = 0;
  std::string previous;
  DecodedCheckpoint previous_decoded, current_decoded;
  for (const std::string& input : inputs) {
    const std::string output = *out + "/" + BaseName(input) + ".ckz";
    CompressResult r;
    Status s = CompressOne(input, output, previous, previous.empty() ? nullptr : &previous_decoded,
                           interval, encode, write, common, &current_decoded, &r);
    if (!s.ok()) return Fail(s);
    previous_decoded = std::move(current_decoded);
    current_decoded = DecodedCheckpoint();
    if (!common.quiet) PrintCompressed(input, output, r, write);
    total_raw += r.raw;
    total_stored += r.stored;
    total_seconds += r.seconds;
    previous = output;
  }
  if (!common.quiet)
    printf("%zu checkpoints: %s -> %s (%s), %.2f s\n", inputs.size(),
           HumanBytes(total_raw).c_str(), HumanBytes(total_stored).c_str(),
           Ratio(total_raw, total_stored).c_str(), total_seconds);
  return kExitOk;
}

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

int Decompress(Args& args, const Common& common) {
  const auto out = args.Value({"-o", "--output"});
  const auto out_dir = args.Value({"--output-dir"});
  const auto ref = args.Value({"--ref"});
  std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.empty()) return Usage("decompress needs a .ckz file");
  if (out && out_dir) return Usage("give -o or --output-dir, not both");
  if (ref && inputs.size() > 1) return Usage("--ref applies to a single input");
  if (out && inputs.size() > 1 && !IsDir(*out))
    return Usage("with several inputs, -o must be an existing folder");
  for (const std::string& input : inputs) {
    // Where it goes: -o, else --output-dir (the checkpoint's own file names), else FILE
    // without its .ckz.
    std::string output, bare_name = BaseName(input);
    if (EndsWith(bare_name, ".ckz")) bare_name.resize(bare_name.size() - 4);
    if (!EndsWith(bare_name, ".safetensors")) bare_name += ".safetensors";
    if (out_dir) {
      output = *out_dir;
    } else if (out && inputs.size() == 1) {
      output = *out;
    } else {
      if (!EndsWith(input, ".ckz"))
        return Usage(input + ": name does not end in .ckz; give the output with -o");
      output = input.substr(0, input.size() - 4);
      if (out) output = *out + "/" + BaseName(output);
    }
    const auto start = std::chrono::steady_clock::now();
    ChainOptions chain;
    chain.search_dirs = common.search;
    if (ref) chain.parent_path = *ref;
    auto reader = ChainReader::Open(input, chain);
    if (!reader.ok()) return Fail(reader.status());
    const uint64_t total = (*reader)->archive().TotalRawBytes();
    Progress progress(BaseName(input), total, !common.quiet);
    RestoreOptions options;
    options.overwrite = common.force;
    options.threads = common.threads;
    options.progress = [&](uint64_t done) { progress.Update(done); };
    if (out && !out_dir) options.convert_to = ConversionFor((*reader)->archive(), output);
    Status s = out_dir ? RestoreFilesInto(**reader, output, bare_name, options)
                       : RestoreCheckpoint(**reader, output, options);
    progress.Finish();
    if (!s.ok()) return Fail(s);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!common.quiet)
      printf("%s => %s: %s restored (%zu decodes: depth %zu), %.2f s, %s/s\n", input.c_str(),
             output.c_str(), HumanBytes(total).c_str(), (*reader)->depth() + 1,
             (*reader)->depth(), seconds,
             HumanBytes(seconds > 0 ? uint64_t(double(total) / seconds) : 0).c_str());
  }
  return kExitOk;
}

int Verify(Args& args, const Common& common) {
  std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.empty()) return Usage("verify needs a .ckz file");
  int exit_code = kExitOk;
  for (const std::string& input : inputs) {
    ChainOptions chain;
    chain.search_dirs = common.search;
    auto reader = ChainReader::Open(input, chain);
    Status s = reader.status();
    if (s.ok()) {
      Progress progress(BaseName(input), (*reader)->archive().TotalRawBytes(), !common.quiet);
      auto report = VerifyChain(**reader, common.threads,
                                [&](uint64_t done) { progress.Update(done); });
      progress.Finish();
      s = report.status();
      if (s.ok() && !common.quiet)
        printf("%s: OK (%llu tensors, %llu chunks, %s, content id %s)\n", input.c_str(),
               static_cast<unsigned long long>(report->tensors),
               static_cast<unsigned long long>(report->chunks),
               HumanBytes(report->raw_bytes).c_str(), ContentIdHex(report->computed).c_str());
    }
    if (!s.ok()) {
      printf("%s: FAILED\n", input.c_str());
      fprintf(stderr, "ckz: %s\n", s.ToString().c_str());
      if (exit_code == kExitOk) exit_code = ExitCodeFor(s);
    }
  }
  return exit_code;
}

int Info(Args& args) {
  InfoOptions options;
  options.json = args.Flag({"--json"});
  options.chunks = args.Flag({"--chunks"});
  std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.empty()) return Usage("info needs a .ckz file");
  for (const std::string& input : inputs) {
    Status s = PrintInfo(input, options);
    if (!s.ok()) return Fail(s);
  }
  return kExitOk;
}

void PrintUsage(FILE* out) {
  fprintf(out, "ckz - compress deep-learning training checkpoints (CKZ format %u.%u)\n",
          kFormatMajor, kFormatMinor);
  fputs(kUsage, out);
}

}  // namespace

int Main(int argc, char** argv) {
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
  return Usage("unknown command '" + command + "'");
}

}  // namespace ckz::cli

int main(int argc, char** argv) { return ckz::cli::Main(argc, argv); }
