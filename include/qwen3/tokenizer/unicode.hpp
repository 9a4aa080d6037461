// qwen3/tokenizer/unicode.hpp - UTF-8, character classes and NFC, as the Qwen3 tokenizer needs them.
//
// Two Unicode versions on purpose (see unicode_tables.hpp): the classes (letter, number, white space)
// follow Unicode 16.0 like the pre-tokenizer regex of Hugging Face tokenizers, and NFC follows
// Unicode 9.0 like its normalizer. Lookup tables are built from the generated ranges on first use
// (about a millisecond, thread-safe) and then cost one or two loads per code point.
//
// Invalid UTF-8: sanitize_utf8() replaces each maximal ill-formed subpart with U+FFFD, the practice
// the Unicode Standard recommends (chapter 3, "U+FFFD Substitution of Maximal Subparts"), which is
// also what Rust's String::from_utf8_lossy, Python's errors="replace" and the WHATWG decoder do.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "unicode_tables.hpp"

namespace qwen3::detail::unicode {

inline constexpr char32_t kReplacementCharacter = 0xFFFD;

// ---------------------------------------------------------------------------------------------
// UTF-8

// Appends the UTF-8 form of `cp` (a Unicode scalar value: at most 0x10FFFF, not a surrogate).
inline void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        char b[2] = {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
        out.append(b, 2);
    } else if (cp < 0x10000) {
        char b[3] = {char(0xE0 | (cp >> 12)), char(0x80 | ((cp >> 6) & 0x3F)), char(0x80 | (cp & 0x3F))};
        out.append(b, 3);
    } else {
        char b[4] = {char(0xF0 | (cp >> 18)), char(0x80 | ((cp >> 12) & 0x3F)), char(0x80 | ((cp >> 6) & 0x3F)),
                     char(0x80 | (cp & 0x3F))};
        out.append(b, 4);
    }
}

// Length of the well-formed UTF-8 sequence at p, or 0 when the bytes at p do not start one (overlong
// forms, surrogates and values above U+10FFFF are ill-formed). For 0, *subpart receives the length of
// the maximal ill-formed subpart (1..3 bytes: the longest prefix of a well-formed sequence, at least 1),
// which is replaced by one U+FFFD. Precondition: p < end.
inline int utf8_sequence_length(const unsigned char* p, const unsigned char* end, int* subpart = nullptr) {
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        if (subpart) *subpart = 1;
        return 0;
    }
    int have = 1;
    for (int i = 1; i <= need; ++i) {
        if (p + i >= end) break;
        unsigned char b = p[i];
        bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) break;
        ++have;
    }
    if (have == need + 1) return have;
    if (subpart) *subpart = have;
    return 0;
}

// Decodes the well-formed sequence of `length` bytes at p (from utf8_sequence_length).
inline char32_t decode_utf8(const unsigned char* p, int length) {
    switch (length) {
        case 1: return p[0];
        case 2: return char32_t(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        case 3: return char32_t(p[0] & 0x0F) << 12 | char32_t(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        default:
            return char32_t(p[0] & 0x07) << 18 | char32_t(p[1] & 0x3F) << 12 | char32_t(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    }
}

// Length of a UTF-8 sequence from its (valid) lead byte.
inline int utf8_lead_length(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

// True when the 8 bytes at p are all ASCII.
inline bool ascii8(const char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return (w & 0x8080808080808080ull) == 0;
}

// Byte offset of the first ill-formed sequence in `text`, or text.size() when it is all well-formed.
inline std::size_t find_invalid_utf8(std::string_view text) {
    const char* begin = text.data();
    const char* p = begin;
    const char* end = begin + text.size();
    while (p < end) {
        if (end - p >= 8 && ascii8(p)) {
            p += 8;
            continue;
        }
        int n = utf8_sequence_length(reinterpret_cast<const unsigned char*>(p), reinterpret_cast<const unsigned char*>(end));
        if (n == 0) return std::size_t(p - begin);
        p += n;
    }
    return text.size();
}

inline bool is_valid_utf8(std::string_view text) { return find_invalid_utf8(text) == text.size(); }

// `text` with every maximal ill-formed subpart replaced by U+FFFD (see the top of this file).
inline std::string sanitize_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
        int subpart = 0;
        int n = utf8_sequence_length(p, end, &subpart);
        if (n > 0) {
            out.append(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
        } else {
            append_utf8(out, kReplacementCharacter);
            p += subpart;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Character properties

// What the pre-tokenizer regex distinguishes (Unicode 16.0): \p{L}, \p{N}, \s, and the rest.
enum class CharClass : std::uint8_t { other = 0, letter = 1, number = 2, space = 3 };

inline constexpr std::uint8_t kClassMask = 3;
// Set when a code point is not a "stable starter" of NFC (Unicode 9.0): it has a nonzero combining
// class, or NFC_Quick_Check is No or Maybe. Text made only of stable starters is already in NFC, and a
// boundary before a stable starter is one NFC never works across.
inline constexpr std::uint8_t kNfcCheck = 4;

// Two-stage table: blocks of 256 code points; identical blocks are stored once.
struct PropertyTable {
    std::vector<std::uint16_t> block_of;  // 0x1100 entries
    std::vector<std::uint8_t> blocks;     // 256 bytes per distinct block

    std::uint8_t get(char32_t cp) const {
        if (cp > 0x10FFFF) return 0;
        return blocks[std::size_t(block_of[cp >> 8]) * 256 + (cp & 0xFF)];
    }
};

struct NormalizationData {
    // code point -> (first, second) for canonical decompositions, sorted by code point
    const detail::unicode_data::Decomposition* decompositions;
    std::size_t decomposition_count;
    // (first << 21 | second) -> composite, for primary composites
    std::unordered_map<std::uint64_t, char32_t> compositions;
    // combining classes: two-stage table as above
    std::vector<std::uint16_t> ccc_block_of;
    std::vector<std::uint8_t> ccc_blocks;

    std::uint8_t combining_class(char32_t cp) const {
        if (cp > 0x10FFFF) return 0;
        return ccc_blocks[std::size_t(ccc_block_of[cp >> 8]) * 256 + (cp & 0xFF)];
    }
    const detail::unicode_data::Decomposition* decomposition(char32_t cp) const {
        const auto* end = decompositions + decomposition_count;
        const auto* it = std::lower_bound(decompositions, end, cp,
                                          [](const detail::unicode_data::Decomposition& d, char32_t c) { return d.code_point < c; });
        return it != end && it->code_point == cp ? it : nullptr;
    }
};

template <typename Fill>
void build_two_stage(std::vector<std::uint16_t>& block_of, std::vector<std::uint8_t>& blocks, Fill&& fill) {
    std::vector<std::uint8_t> flat(0x110000, 0);
    fill(flat);
    block_of.assign(0x1100, 0);
    std::unordered_map<std::string_view, std::uint16_t> seen;
    blocks.reserve(256 * 512);
    // blocks are compared by content; the views point into `flat`, which outlives the map
    for (std::size_t b = 0; b < 0x1100; ++b) {
        std::string_view content(reinterpret_cast<const char*>(flat.data() + b * 256), 256);
        auto [it, inserted] = seen.emplace(content, std::uint16_t(blocks.size() / 256));
        if (inserted) blocks.insert(blocks.end(), flat.begin() + std::ptrdiff_t(b * 256), flat.begin() + std::ptrdiff_t(b * 256 + 256));
        block_of[b] = it->second;
    }
    blocks.shrink_to_fit();
}

inline constexpr char32_t kHangulBase = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
inline constexpr int kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
inline constexpr int kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

inline const NormalizationData& normalization_data() {
    static const NormalizationData data = [] {
        NormalizationData d;
        d.decompositions = detail::unicode_data::kDecompositions;
        d.decomposition_count = std::size(detail::unicode_data::kDecompositions);
        for (const auto& e : detail::unicode_data::kDecompositions)
            if (e.composes) d.compositions.emplace(std::uint64_t(e.first) << 21 | e.second, e.code_point);
        build_two_stage(d.ccc_block_of, d.ccc_blocks, [](std::vector<std::uint8_t>& flat) {
            for (const auto& r : detail::unicode_data::kCombiningClasses)
                for (char32_t c = r.first; c <= r.last; ++c) flat[c] = r.combining_class;
        });
        return d;
    }();
    return data;
}

inline const PropertyTable& property_table() {
    static const PropertyTable table = [] {
        PropertyTable t;
        build_two_stage(t.block_of, t.blocks, [](std::vector<std::uint8_t>& flat) {
            auto mark = [&](const auto& ranges, std::uint8_t cls) {
                for (const auto& r : ranges)
                    for (char32_t c = r.first; c <= r.last; ++c) flat[c] = std::uint8_t((flat[c] & ~kClassMask) | cls);
            };
            mark(detail::unicode_data::kLetters, std::uint8_t(CharClass::letter));
            mark(detail::unicode_data::kNumbers, std::uint8_t(CharClass::number));
            mark(detail::unicode_data::kWhiteSpace, std::uint8_t(CharClass::space));
            // NFC quick check (Unicode 9.0): nonzero class, no (decomposes, not recomposed), maybe
            // (second part of a composition, Hangul medial vowels and final consonants)
            for (const auto& r : detail::unicode_data::kCombiningClasses)
                for (char32_t c = r.first; c <= r.last; ++c) flat[c] |= kNfcCheck;
            for (const auto& e : detail::unicode_data::kDecompositions) {
                if (!e.composes) flat[e.code_point] |= kNfcCheck;
                else flat[e.second] |= kNfcCheck;
            }
            for (char32_t c = kHangulV; c < kHangulV + kHangulVCount; ++c) flat[c] |= kNfcCheck;
            for (char32_t c = kHangulT + 1; c < kHangulT + kHangulTCount; ++c) flat[c] |= kNfcCheck;
        });
        return t;
    }();
    return table;
}

// The class of `cp` (Unicode 16.0).
inline CharClass char_class(char32_t cp) {
    return CharClass(property_table().get(cp) & kClassMask);
}

// The canonical combining class of `cp` (Unicode 9.0).
inline std::uint8_t combining_class(char32_t cp) { return normalization_data().combining_class(cp); }

// ---------------------------------------------------------------------------------------------
// NFC (Unicode 9.0)

inline void decompose_into(char32_t cp, const NormalizationData& data, std::vector<char32_t>& out) {
    if (cp >= kHangulBase && cp < kHangulBase + char32_t(kHangulSCount)) {
        int s = int(cp - kHangulBase);
        out.push_back(kHangulL + char32_t(s / kHangulNCount));
        out.push_back(kHangulV + char32_t((s % kHangulNCount) / kHangulTCount));
        if (s % kHangulTCount != 0) out.push_back(kHangulT + char32_t(s % kHangulTCount));
        return;
    }
    if (const auto* d = data.decomposition(cp)) {
        decompose_into(d->first, data, out);  // depth is bounded by the data (at most 4 levels)
        if (d->second) decompose_into(d->second, data, out);
        return;
    }
    out.push_back(cp);
}

inline char32_t compose_pair(char32_t a, char32_t b, const NormalizationData& data) {
    if (a >= kHangulL && a < kHangulL + char32_t(kHangulLCount) && b >= kHangulV && b < kHangulV + char32_t(kHangulVCount))
        return kHangulBase + char32_t((int(a - kHangulL) * kHangulVCount + int(b - kHangulV)) * kHangulTCount);
    if (a >= kHangulBase && a < kHangulBase + char32_t(kHangulSCount) && (a - kHangulBase) % kHangulTCount == 0 &&
        b > kHangulT && b < kHangulT + char32_t(kHangulTCount))
        return a + (b - kHangulT);
    auto it = data.compositions.find(std::uint64_t(a) << 21 | b);
    return it == data.compositions.end() ? 0 : it->second;
}

// NFC of a run of code points (decompose, order marks by combining class, compose), appended as UTF-8.
inline void normalize_region(std::string_view region, std::string& out, std::vector<char32_t>& buffer) {
    const NormalizationData& data = normalization_data();
    buffer.clear();
    const auto* p = reinterpret_cast<const unsigned char*>(region.data());
    const auto* end = p + region.size();
    while (p < end) {
        int n = utf8_lead_length(*p);
        decompose_into(decode_utf8(p, n), data, buffer);
        p += n;
    }
    // canonical ordering: a stable sort of each run of nonzero-class marks by class
    for (std::size_t i = 0; i < buffer.size();) {
        if (data.combining_class(buffer[i]) == 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < buffer.size() && data.combining_class(buffer[j]) != 0) ++j;
        std::stable_sort(buffer.begin() + std::ptrdiff_t(i), buffer.begin() + std::ptrdiff_t(j),
                         [&](char32_t a, char32_t b) { return data.combining_class(a) < data.combining_class(b); });
        i = j;
    }
    // canonical composition: a character joins the last starter unless blocked by a character in
    // between of class 0 or of a class not lower than its own
    std::size_t starter = std::size_t(-1);
    int last_class = -1;  // class of the last character kept after the starter; -1: none
    std::size_t kept = 0;
    for (std::size_t i = 0; i < buffer.size(); ++i) {
        char32_t c = buffer[i];
        int cls = data.combining_class(c);
        if (starter != std::size_t(-1) && (last_class == -1 || (last_class != 0 && last_class < cls))) {
            if (char32_t composite = compose_pair(buffer[starter], c, data)) {
                buffer[starter] = composite;
                continue;
            }
        }
        if (cls == 0) {
            starter = kept;
            last_class = -1;
        } else {
            last_class = cls;
        }
        buffer[kept++] = c;
    }
    for (std::size_t i = 0; i < kept; ++i) append_utf8(out, buffer[i]);
}

// True when `text` (valid UTF-8) is certainly in NFC because it holds only stable starters. False
// only means "look closer": "q" + U+0301 is in NFC but holds a combining mark.
inline bool is_nfc_quick(std::string_view text) {
    const PropertyTable& table = property_table();
    const char* p = text.data();
    const char* end = p + text.size();
    while (p < end) {
        if (end - p >= 8 && ascii8(p)) {
            p += 8;
            continue;
        }
        auto c = static_cast<unsigned char>(*p);
        if (c < 0x80) {
            ++p;
            continue;
        }
        int n = utf8_lead_length(c);
        if (table.get(decode_utf8(reinterpret_cast<const unsigned char*>(p), n)) & kNfcCheck) return false;
        p += n;
    }
    return true;
}

// Appends the NFC form (Unicode 9.0) of `text` to `out`. Precondition: `text` is valid UTF-8. Only the
// stretches around characters that are not stable starters are rewritten; the rest is copied.
inline void append_nfc(std::string_view text, std::string& out) {
    const PropertyTable& table = property_table();
    std::vector<char32_t> buffer;
    const char* begin = text.data();
    const char* p = begin;
    const char* end = begin + text.size();
    const char* copied = begin;    // text before this is already in `out`
    const char* boundary = begin;  // start of the last stable starter seen (or of the text)
    while (p < end) {
        auto c = static_cast<unsigned char>(*p);
        if (c < 0x80) {
            boundary = p++;
            continue;
        }
        int n = utf8_lead_length(c);
        if (!(table.get(decode_utf8(reinterpret_cast<const unsigned char*>(p), n)) & kNfcCheck)) {
            boundary = p;
            p += n;
            continue;
        }
        // p needs work: the region runs from the last boundary to the next stable starter
        const char* q = p + n;
        while (q < end) {
            auto b = static_cast<unsigned char>(*q);
            int m = utf8_lead_length(b);
            if (b < 0x80 || !(table.get(decode_utf8(reinterpret_cast<const unsigned char*>(q), m)) & kNfcCheck)) break;
            q += m;
        }
        out.append(copied, boundary);
        normalize_region(std::string_view(boundary, std::size_t(q - boundary)), out, buffer);
        copied = boundary = p = q;
    }
    out.append(copied, end);
}

// The NFC form (Unicode 9.0) of `text`. Precondition: valid UTF-8.
inline std::string nfc(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    append_nfc(text, out);
    return out;
}

}  // namespace qwen3::detail::unicode
