#include "core/version_store.h"

#include <algorithm>

#include "core/publisher.h"

namespace wd {

std::string VersionStore::ModelLocation(const std::string& model) const {
  const std::string& w = where();
  return (!w.empty() && w.back() == '/') ? w + model : w + "/" + model;
}

namespace {

// Today's serve folder, unchanged: Publisher with a root bound.
class LocalStore : public VersionStore {
 public:
  LocalStore(FileSystem& fs, std::string root) : fs_(fs), publisher_(fs), root_(std::move(root)) {}
  const std::string& where() const override { return root_; }
  Result<PublishResult> Publish(const PublishRequest& req, const Producer& produce) override {
    // Staging folders of crashed publishes first, as the daemon does at
    // start: the CLI has no start.
    WD_RETURN_IF_ERROR(publisher_.RemoveLeftoverStaging(root_));
    PublishRequest r = req;
    r.serve_root = root_;
    return publisher_.Publish(r, produce);
  }
  Result<int> Rollback(const std::string& model, std::optional<int> to) override {
    return publisher_.Rollback(root_, model, to);
  }
  Status RemoveLeftovers() override { return publisher_.RemoveLeftoverStaging(root_); }
  Result<std::vector<int>> ListVersions(const std::string& model) override {
    return publisher_.ListVersions(root_, model);
  }
  Result<std::optional<int>> CurrentVersion(const std::string& model) override {
    return publisher_.CurrentVersion(root_, model);
  }
  std::optional<SourceRecord> CurrentSource(const std::string& model) override {
    return publisher_.CurrentSource(root_, model);
  }
  Result<std::vector<std::string>> ListModels() override {
    if (!fs_.Exists(root_)) return std::vector<std::string>();
    WD_ASSIGN_OR_RETURN(std::vector<std::string> names, fs_.ListDir(root_));
    std::vector<std::string> models;
    for (const std::string& n : names) {
      if (ValidateModelName(n).ok() && fs_.IsDirectory(root_ + "/" + n)) models.push_back(n);
    }
    std::sort(models.begin(), models.end());
    return models;
  }

 private:
  FileSystem& fs_;
  Publisher publisher_;
  std::string root_;
};

}  // namespace

std::unique_ptr<VersionStore> NewLocalStore(FileSystem& fs, const std::string& serve_root) {
  return std::make_unique<LocalStore>(fs, serve_root);
}

}  // namespace wd
