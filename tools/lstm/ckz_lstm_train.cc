// ckz-lstm-train: trains the LSTM model (spec 7.11) on a written lossy link's levels, or its
// cm indices (7.11.7) for an --excp link, with
// libtorch, and writes it for `ckz compress --lstm` (cli.h's model file). `ckz compress --lstm`
// runs it as a separate program, so that neither ckz nor any decoder links libtorch.
//
//   ckz-lstm-train LINK.ckz -o MODEL [--hidden H] [--clip C] [--seconds S] [--steps N]
//                  [--sample ELEMENTS] [--search DIR]
//
// The link's parents are found as ckz finds them (beside it, its path hint, --search). Prints
// one line: the model's sizes and bytes, the training's steps, seconds and losses.
#include <cstdio>
#include <string>

#include "cli.h"
#include "train/level_samples.h"
#include "train/lstm_trainer.h"

namespace {

using namespace ckz;
using namespace ckz::cli;

int Usage(const std::string& why) {
  fprintf(stderr,
          "ckz-lstm-train: %s\nusage: ckz-lstm-train LINK.ckz -o MODEL [--hidden 8|16|24|32] "
          "[--clip 1..7] [--seconds S] [--steps N] [--sample ELEMENTS] [--search DIR]\n",
          why.c_str());
  return kExitUsage;
}

int Fail(const Status& s) {
  fprintf(stderr, "ckz-lstm-train: %s\n", ErrorText(s).c_str());
  return ExitCodeFor(s);
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, 1);
  const auto out = args.Value({"-o", "--output"});
  const auto hidden = args.Value({"--hidden"});
  const auto clip = args.Value({"--clip"});
  const auto seconds = args.Value({"--seconds"});
  const auto steps = args.Value({"--steps"});
  const auto sample = args.Value({"--sample"});
  const auto search = args.Value({"--search"});
  const std::vector<std::string> inputs = args.Positionals();
  if (!args.error().empty()) return Usage(args.error());
  if (inputs.size() != 1 || !out) return Usage("needs one LINK.ckz and -o MODEL");
  LstmTrainOptions opt;
  opt.hidden = 8;  // docs/lstm.md: the best net gain on small histories
  opt.clip = 3;
  opt.max_seconds = 10;
  uint64_t v = 0;
  if (hidden) {
    if (!ParseUint(*hidden, &v) || v < 8 || v > 32 || v % 8) return Usage("--hidden is 8, 16, 24 or 32");
    opt.hidden = uint32_t(v);
  }
  if (clip) {
    if (!ParseUint(*clip, &v) || v < 1 || v > 7) return Usage("--clip is 1..7");
    opt.clip = uint32_t(v);
  }
  if (seconds) {
    char* end = nullptr;
    opt.max_seconds = strtod(seconds->c_str(), &end);
    if (*end || !(opt.max_seconds > 0)) return Usage("--seconds needs a positive number");
  }
  if (steps) {
    if (!ParseUint(*steps, &v) || v < 1) return Usage("--steps needs a positive integer");
    opt.max_steps = uint32_t(v);
  }
  if (sample) {
    if (!ParseUint(*sample, &v) || v < 1024) return Usage("--sample needs at least 1024 elements");
    opt.sample_elements = size_t(v);
  }
  ChainOptions chain;
  if (search) chain.search_dirs.push_back(*search);
  auto reader = ChainReader::Open(inputs[0], chain);
  if (!reader.ok()) return Fail(reader.status());
  if (!(*reader)->archive().link)
    return Fail(Status(ErrorCode::kUnsupportedInput,
                       inputs[0] + ": a keyframe has no lossy streams to train on"));
  // Chunks spread over the link, a few times the trainer's sample: bounded memory on a large
  // checkpoint, and windows drawn from every part of it. A link of level tensors (the default
  // lossy coding) trains on its levels; one of codebook tensors (--excp) on its indices
  // (spec 7.11.7).
  const uint64_t keep = 4 * uint64_t(opt.sample_elements);
  auto chunks = ReadLevelChunks(**reader, keep);
  if (!chunks.ok()) return Fail(chunks.status());
  std::vector<IndexChunkSample> index_chunks;
  std::vector<LstmTrainingChunk> train = TrainingChunks(*chunks);
  if (chunks->empty()) {
    auto read = ReadIndexChunks(**reader, keep);
    if (!read.ok()) return Fail(read.status());
    index_chunks = std::move(read).value();
    train = TrainingChunks(index_chunks);
  }
  if (train.empty())
    return Fail(Status(ErrorCode::kUnsupportedInput,
                       inputs[0] + ": no level or codebook-quantized tensors"));
  LstmTrainReport report;
  const LstmModel model = TrainLevelLstm(train, opt, &report);
  if (!model.WellFormed())
    return Fail(Status(ErrorCode::kUnsupported, "the trainer made a model outside spec 7.11.1"));
  Status s = WriteLstmModelFile(*out, model);
  if (!s.ok()) return Fail(s);
  printf("model: H %u, clip %u, %zu bytes; %u steps in %.1f s, %.4f -> %.4f bits per decision "
         "(cml %.4f)\n",
         model.hidden, model.clip, model.StoredBytes(), report.steps, report.seconds,
         report.first_loss, report.last_loss, report.cml_loss);
  return kExitOk;
}
