// qwen3/variant.hpp - pick, at run time, the compiled configuration that fits a file.
//
// Tools that accept any model write their work once, as a generic lambda, and let the file decide
// which compiled variant runs it:
//
//     auto ckpt = qwen3::Checkpoint::open(path);
//     qwen3::with_variant(ckpt.params(), [&]<class Cfg>() {
//         qwen3::Model<Cfg> model(std::move(ckpt));
//         ...
//     });
//
// Each listed variant instantiates the lambda; list only the variants a program needs (each one
// compiles its own kernels), or use QWEN3_EXTERN_VARIANT to compile their forward passes elsewhere.
#pragma once

#include <string>
#include <utility>

#include "config.hpp"
#include "error.hpp"
#include "format/checkpoint.hpp"
#include "weights.hpp"

namespace qwen3 {

namespace detail {

template <class Fn, class First, class... Rest>
decltype(auto) dispatch_variant(const ConfigDims& file, Fn&& fn, ConfigList<First, Rest...>) {
    if (same_shape(dims_of<First>(), file)) return fn.template operator()<First>();
    if constexpr (sizeof...(Rest) > 0) {
        return dispatch_variant(file, std::forward<Fn>(fn), ConfigList<Rest...>{});
    } else {
        using Result = decltype(fn.template operator()<First>());
        if constexpr (!std::is_void_v<Result>) return Result{};  // unreachable: callers check first
    }
}

template <class... Cfgs>
bool any_variant_fits(const ConfigDims& file, ConfigList<Cfgs...>) {
    return (same_shape(dims_of<Cfgs>(), file) || ...);
}

template <class... Cfgs>
std::string variant_names(ConfigList<Cfgs...>) {
    std::string out;
    ((out += (out.empty() ? "" : ", ") + std::string(Cfgs::name)), ...);
    return out;
}

}  // namespace detail

// The name of the variant in `List` whose shape equals the file's, or "" when none does.
template <class List = NamedVariants>
std::string matching_variant(const ModelParams& params) {
    const ConfigDims file = detail::dims_of_file(params);
    std::string name;
    detail::dispatch_variant(file, [&]<class Cfg>() { name = std::string(Cfg::name); }, List{});
    return name;
}

// Calls fn.template operator()<Cfg>() for the variant of `List` whose shape equals the file's and
// returns its result. Throws Error(config_mismatch) describing the file when no variant fits.
template <class List = NamedVariants, class Fn>
decltype(auto) with_variant(const ModelParams& params, Fn&& fn) {
    const ConfigDims file = detail::dims_of_file(params);
    if (!detail::any_variant_fits(file, List{}))
        detail::fail(ErrorCode::config_mismatch, "no compiled variant fits this model (", detail::describe(file),
                     "); compiled: ", detail::variant_names(List{}), ". ", detail::variant_hint(params));
    return detail::dispatch_variant(file, std::forward<Fn>(fn), List{});
}

}  // namespace qwen3
