// withFileContext: run a reader/writer step and re-throw any drp::Error of a known family with a
// context prefix ("reading HDU MASK: ") and the file attached, so every error names the file.
// LogicError and NumericalError from header accessors (a key of the wrong type, a singular WCS)
// become InvalidInputError: at a file boundary they mean the file's content is bad.
#pragma once

#include <string>

#include "core/Error.h"

namespace drp {

template <typename Fn>
auto withFileContext(const std::string& file, const std::string& context, Fn&& fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const FitsError& e) {
        throw FitsError(context + e.message(), file);
    } catch (const IoError& e) {
        throw IoError(context + e.message(), file);
    } catch (const NotFoundError& e) {
        throw NotFoundError(context + e.message(), file);
    } catch (const InvalidInputError& e) {
        throw InvalidInputError(context + e.message(), file);
    } catch (const LogicError& e) {
        throw InvalidInputError(context + e.message(), file);
    } catch (const NumericalError& e) {
        throw InvalidInputError(context + e.message(), file);
    }
}

}  // namespace drp
