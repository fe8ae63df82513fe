// ForEachInChainOrder: the order in which the tools read the files of a chain.
#include <map>
#include <memory>
#include <optional>

#include "cli.h"

namespace ckz::cli {

void ForEachInChainOrder(const std::vector<std::string>& paths, const ChainOptions& chain,
                         const std::function<Status(size_t, ChainReader&, bool)>& visit,
                         const std::function<bool(size_t, const Status&)>& failed) {
  const size_t n = paths.size();
  std::vector<std::vector<size_t>> children(n);
  std::vector<bool> is_child(n, false);
  {
    std::map<ContentId, size_t> by_id;
    std::vector<std::optional<ContentId>> parent(n);
    for (size_t i = 0; i < n; ++i) {
      auto file = OpenCkzFile(paths[i]);
      if (!file.ok()) continue;  // reported when visited
      by_id.emplace((*file)->archive.content_id, i);
      if ((*file)->archive.link) parent[i] = (*file)->archive.link->parent_content_id;
    }
    for (size_t i = 0; i < n; ++i) {
      if (!parent[i]) continue;
      auto it = by_id.find(*parent[i]);
      if (it == by_id.end() || it->second == i) continue;
      children[it->second].push_back(i);
      is_child[i] = true;
    }
  }
  // Depth first from each input whose parent is not given, in the order given.
  std::vector<size_t> order;
  std::vector<bool> placed(n, false);
  for (size_t root = 0; root < n; ++root) {
    if (is_child[root] || placed[root]) continue;
    std::vector<size_t> stack = {root};
    while (!stack.empty()) {
      const size_t i = stack.back();
      stack.pop_back();
      if (placed[i]) continue;
      placed[i] = true;
      order.push_back(i);
      for (auto c = children[i].rbegin(); c != children[i].rend(); ++c) stack.push_back(*c);
    }
  }
  for (size_t i = 0; i < n; ++i)
    if (!placed[i]) order.push_back(i);  // (content ids cannot form a cycle; just in case)

  std::map<ContentId, std::unique_ptr<DecodedReference>> kept;
  std::map<ContentId, size_t> pending;  // children still to visit
  for (size_t i : order) {
    auto reader = ChainReader::Open(paths[i], chain);
    if (!reader.ok()) {
      if (!failed(i, reader.status())) return;
      continue;
    }
    const Archive& a = (*reader)->archive();
    bool cached = false;
    std::optional<ContentId> parent_id;
    if (a.link) parent_id = a.link->parent_content_id;
    if (parent_id && kept.count(*parent_id)) {
      (*reader)->UseDecodedParent(kept[*parent_id].get());
      cached = true;
    }
    std::unique_ptr<DecodedReference> recorder;
    if (!children[i].empty()) {
      auto r = DecodedReference::Create(a);
      if (r.ok()) {
        recorder = std::move(r).value();
        (*reader)->RecordInto(recorder.get());
      }
    }
    Status s = visit(i, **reader, cached);
    (*reader)->RecordInto(nullptr);
    if (s.ok() && recorder && recorder->Finish(**reader).ok()) {
      pending[a.content_id] = children[i].size();
      kept[a.content_id] = std::move(recorder);
    }
    (*reader)->UseDecodedParent(nullptr);
    if (parent_id && pending.count(*parent_id) && --pending[*parent_id] == 0) {
      kept.erase(*parent_id);
      pending.erase(*parent_id);
    }
    if (!s.ok() && !failed(i, s)) return;
  }
}

}  // namespace ckz::cli
