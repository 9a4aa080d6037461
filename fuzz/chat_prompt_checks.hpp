// The invariants of a rendered chat prompt's untrusted ranges, shared by the chat targets.
#pragma once

#include <string>

#include <qwen3/chat/template.hpp>

#include "fuzz_support.hpp"

namespace qwen3_fuzz {

// Sorted, non-empty, disjoint, not adjacent and inside the text; the segments give the text back.
inline void check_untrusted_ranges(const qwen3::chat::RenderedPrompt& p) {
    std::size_t previous_end = 0;
    for (std::size_t i = 0; i < p.untrusted.size(); ++i) {
        const qwen3::chat::TextRange& r = p.untrusted[i];
        check(r.begin < r.end, "empty untrusted range ", i);
        check(r.end <= p.text.size(), "untrusted range ", i, " past the text");
        check(i == 0 || r.begin > previous_end, "untrusted ranges ", i - 1, " and ", i, " overlap or touch");
        previous_end = r.end;
    }
    std::string joined;
    for (const qwen3::chat::Segment& s : p.segments()) joined += s.text;
    check(joined == p.text, "segments do not concatenate to the text");
}

}  // namespace qwen3_fuzz
