// The LSTM model file (CKZLSTM1): how the trainer program hands a model to the writers.
#include <cstring>

#include "ckz/io.h"

namespace ckz {
namespace {
constexpr char kLstmFileMagic[8] = {'C', 'K', 'Z', 'L', 'S', 'T', 'M', '1'};
}  // namespace

Status WriteLstmModelFile(const std::string& path, const LstmModel& model) {
  std::vector<uint8_t> bytes(kLstmFileMagic, kLstmFileMagic + 8);
  for (uint32_t v : {model.hidden, model.clip, model.recur_shift, model.out_shift})
    bytes.push_back(uint8_t(v));
  const std::vector<uint8_t> params = model.Params();
  bytes.insert(bytes.end(), params.begin(), params.end());
  return WriteFileAtomically(path, ByteSpan(bytes), /*overwrite=*/true);
}

Result<LstmModel> ReadLstmModelFile(const std::string& path) {
  auto file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  const ByteSpan b = file->bytes();
  LstmModel m;
  if (b.size < 12 || std::memcmp(b.data, kLstmFileMagic, 8) != 0)
    return Status(ErrorCode::kUnsupportedInput, path + ": not an LSTM model file (CKZLSTM1)");
  m.hidden = b.data[8];
  m.clip = b.data[9];
  m.recur_shift = b.data[10];
  m.out_shift = b.data[11];
  if (!m.SetParams(b.data + 12, b.size - 12) || !m.WellFormed())
    return Status(ErrorCode::kUnsupportedInput,
                  path + ": the LSTM model's sizes or values are outside spec 7.11.1's rules");
  return m;
}

uint32_t LstmTrainingSteps(uint64_t checkpoint_bytes, uint64_t links_to_come) {
  const uint64_t work = checkpoint_bytes * (links_to_come > 1 ? links_to_come : 1);
  const uint64_t mib = (work + (uint64_t{1} << 20) - 1) >> 20;
  return uint32_t(mib < 60 ? 60 : mib > 400 ? 400 : mib);
}

}  // namespace ckz
