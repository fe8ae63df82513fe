// lstm_measure: what the LSTM model (spec 7.11, docs/lstm.md) saves against cml alone on a
// chain written with level quantization, or (0.11, spec 7.11.7) against cm alone on an ExCP
// chain (--excp), model bytes counted.
//
//   lstm_measure CHAIN_DIR [--hidden H] [--clip C] [--seconds S] [--steps N] [--sample ELEMENTS]
//                [--window W] [--qat 0|1] [--train-link K]
//
// Trains one model (libtorch) on a sample of the first link's (or link K's) level streams (or
// index streams, for a chain without level tensors), as the encoder does once per keyframe
// segment, then codes every link's chunks with the context model alone and mixed with the
// model (the integer inference a decoder runs), keeping per chunk the smaller, and checks that
// each mixed stream decodes back. Prints bytes by stream (dW, m, v) and per link.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "ckz/decoder.h"
#include "ckz/io.h"
#include "common/index_model.h"
#include "common/level_model.h"
#include "train/level_samples.h"
#include "train/lstm_trainer.h"

namespace {

using namespace ckz;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

[[noreturn]] void Fail(const Status& s) {
  fprintf(stderr, "lstm_measure: %s\n", s.ToString().c_str());
  exit(2);
}

const char* kStream[4] = {"dW", "m", "v", "other"};

// One level chunk (or index chunk) of one link.
struct LinkChunk {
  int link;
  LevelChunkSample sample;
  IndexChunkSample index;
  bool indices = false;
  uint32_t role() const { return indices ? index.role : sample.role; }
  size_t count() const { return indices ? index.indices.size() : sample.levels.size(); }
};

// The chunk coded by the context model alone (model null) or mixed with `model`; false when
// the mixed stream does not decode back.
bool Code(const LinkChunk& c, const LstmModel* model, std::vector<uint8_t>* out) {
  out->clear();
  if (c.indices) {
    IndexModelInputs in = c.index.Inputs();
    in.lstm = model;
    EncodeIndexStream(in, c.index.indices.data(), c.count(), out);
    if (!model) return true;
    std::vector<uint8_t> back(c.count());
    size_t bad = 0;
    return DecodeIndexStream(in, out->data(), out->size(), back.data(), back.size(), &bad) ==
               IndexDecodeResult::kOk &&
           back == c.index.indices;
  }
  LevelModelInputs in = c.sample.Inputs();
  in.lstm = model;
  EncodeLevelStream(in, c.sample.levels.data(), c.count(), out);
  if (!model) return true;
  std::vector<int32_t> back(c.count());
  size_t bad = 0;
  return DecodeLevelStream(in, out->data(), out->size(), back.data(), back.size(), &bad) ==
             LevelDecodeResult::kOk &&
         back == c.sample.levels;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: lstm_measure CHAIN_DIR [--hidden H] [--clip C] [--seconds S] [--steps N] [--sample ELEMENTS] [--window W] [--qat 0|1] [--train-link K]\n");
    return 1;
  }
  LstmTrainOptions opt;
  int train_link = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--train-link") {
      train_link = atoi(argv[i + 1]);
      continue;
    }
    if (k == "--hidden") opt.hidden = uint32_t(atoi(argv[i + 1]));
    else if (k == "--clip") opt.clip = uint32_t(atoi(argv[i + 1]));
    else if (k == "--seconds") opt.max_seconds = atof(argv[i + 1]);
    else if (k == "--steps") opt.max_steps = uint32_t(atoi(argv[i + 1]));
    else if (k == "--sample") opt.sample_elements = size_t(atoll(argv[i + 1]));
    else if (k == "--window") opt.window = uint32_t(atoi(argv[i + 1]));
    else if (k == "--qat") opt.quantization_aware = atoi(argv[i + 1]) != 0;
    else {
      fprintf(stderr, "lstm_measure: unknown option %s\n", k.c_str());
      return 1;
    }
  }
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(argv[1]))
    if (e.path().extension() == ".ckz") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<LinkChunk> chunks;
  uint64_t restored_bytes = 0;
  int link_no = 0;
  for (const std::string& path : files) {
    auto reader = ChainReader::Open(path);
    if (!reader.ok()) Fail(reader.status());
    const Archive& a = (*reader)->archive();
    if (!a.link) continue;
    ++link_no;
    auto read = ReadLevelChunks(**reader);
    if (!read.ok()) Fail(read.status());
    for (LevelChunkSample& c : *read) {
      restored_bytes += c.levels.size() * DTypeSize(a.tensors[c.tensor].dtype);
      chunks.push_back({link_no, std::move(c), {}, false});
    }
    if (!read->empty()) continue;
    auto index = ReadIndexChunks(**reader);  // an ExCP link
    if (!index.ok()) Fail(index.status());
    for (IndexChunkSample& c : *index) {
      restored_bytes += c.indices.size() * DTypeSize(a.tensors[c.tensor].dtype);
      chunks.push_back({link_no, {}, std::move(c), true});
    }
  }
  if (chunks.empty()) {
    fprintf(stderr, "lstm_measure: no level or codebook tensors in the links of %s\n", argv[1]);
    return 1;
  }
  // Train on the first link (or link K), as an encoder that trains once per keyframe segment.
  std::vector<LevelChunkSample> first_link;
  std::vector<IndexChunkSample> first_link_indices;
  for (const LinkChunk& c : chunks)
    if (c.link == train_link) {
      if (c.indices) first_link_indices.push_back(c.index);
      else first_link.push_back(c.sample);
    }
  std::vector<LstmTrainingChunk> train = TrainingChunks(first_link);
  for (const LstmTrainingChunk& c : TrainingChunks(first_link_indices)) train.push_back(c);
  LstmTrainReport rep;
  const LstmModel model = TrainLevelLstm(train, opt, &rep);
  if (!model.WellFormed()) {
    fprintf(stderr, "lstm_measure: the trainer made a model outside the format's rules\n");
    return 2;
  }
  printf("model: H %u, clip %u, %zu bytes, recur_shift %u, out_shift %u; trained %u steps in %.1f s "
         "(sample loss %.4f -> %.4f bits/decision, cml %.4f)\n",
         model.hidden, model.clip, model.StoredBytes(), model.recur_shift, model.out_shift, rep.steps,
         rep.seconds, rep.first_loss, rep.last_loss, rep.cml_loss);
  // Code every chunk both ways.
  std::map<int, std::array<uint64_t, 3>> per_link;        // cml, lstm, best
  std::map<uint32_t, std::array<uint64_t, 3>> per_stream;
  std::map<uint32_t, uint64_t> elements;
  double cml_s = 0, lstm_s = 0;
  uint64_t chunks_lstm = 0, n_chunks = 0;
  for (const LinkChunk& c : chunks) {
    std::vector<uint8_t> plain, mixed;
    auto t0 = Clock::now();
    Code(c, nullptr, &plain);
    cml_s += Since(t0);
    t0 = Clock::now();
    if (!Code(c, &model, &mixed)) {
      fprintf(stderr, "lstm_measure: a mixed stream does not decode back\n");
      return 2;
    }
    lstm_s += Since(t0);  // encode and decode
    const uint64_t a = plain.size() + 5, b = mixed.size() + 5, best = std::min(a, b);
    chunks_lstm += b < a;
    ++n_chunks;
    for (auto* row : {&per_link[c.link], &per_stream[c.role()]}) {
      (*row)[0] += a;
      (*row)[1] += b;
      (*row)[2] += best;
    }
    elements[c.role()] += c.count();
  }
  auto pct = [](uint64_t x, uint64_t base) { return 100.0 * (double(x) - double(base)) / double(base); };
  printf("\n| stream | elements | cml bytes | cml+lstm | change | best per chunk | change |\n|---|---:|---:|---:|---:|---:|---:|\n");
  std::array<uint64_t, 3> total{};
  for (const auto& [role, b] : per_stream) {
    printf("| %s | %llu | %llu | %llu | %+.2f %% | %llu | %+.2f %% |\n", kStream[role],
           (unsigned long long)elements[role], (unsigned long long)b[0], (unsigned long long)b[1],
           pct(b[1], b[0]), (unsigned long long)b[2], pct(b[2], b[0]));
    for (int k = 0; k < 3; ++k) total[k] += b[k];
  }
  printf("| all | | %llu | %llu | %+.2f %% | %llu | %+.2f %% |\n", (unsigned long long)total[0],
         (unsigned long long)total[1], pct(total[1], total[0]), (unsigned long long)total[2],
         pct(total[2], total[0]));
  printf("| all + model | | %llu | | | %llu | **%+.2f %%** |\n", (unsigned long long)total[0],
         (unsigned long long)(total[2] + model.StoredBytes()),
         pct(total[2] + model.StoredBytes(), total[0]));
  printf("\n| link | cml bytes | best per chunk | change |\n|---:|---:|---:|---:|\n");
  for (const auto& [link, b] : per_link)
    printf("| %d | %llu | %llu | %+.2f %% |\n", link, (unsigned long long)b[0],
           (unsigned long long)b[2], pct(b[2], b[0]));
  const double mb = double(restored_bytes) / 1e6;
  printf("\nchunks coded with the model: %llu of %llu; restored checkpoint bytes %.1f MB\n",
         (unsigned long long)chunks_lstm, (unsigned long long)n_chunks, mb);
  printf("coding, 1 thread: context model alone %.2f s (%.1f MB/s), mixed with the model, "
         "encode and decode %.2f s (%.1f MB/s); training %.1f s\n",
         cml_s, mb / cml_s, lstm_s, mb / lstm_s, rep.seconds);
  return 0;
}
