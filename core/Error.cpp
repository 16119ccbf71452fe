#include "core/Error.h"

namespace drp {

Error::Error(const std::string& message, std::string file, std::string dataId)
    : std::runtime_error(compose(message, file, dataId)),
      message_(message),
      file_(std::move(file)),
      dataId_(std::move(dataId)) {}

std::string Error::compose(const std::string& message, const std::string& file, const std::string& dataId) {
    std::string out = message;
    if (!file.empty()) out += " [file: " + file + "]";
    if (!dataId.empty()) out += " [dataId: " + dataId + "]";
    return out;
}

}  // namespace drp
