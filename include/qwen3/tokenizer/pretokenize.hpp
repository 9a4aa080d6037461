// qwen3/tokenizer/pretokenize.hpp - the Qwen2 pre-tokenizer split, as a hand-written scanner.
//
// Qwen2 and Qwen3 cut text into pieces with this regex before byte-pair encoding (tokenizer.json,
// pre_tokenizer Split, behaviour Isolated):
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} | ?[^\s\p{L}\p{N}]+[\r\n]*
//   | \s*[\r\n]+ | \s+(?!\S) | \s+
//
// Hugging Face runs it with Oniguruma: at each position the first alternative that matches wins, and
// every character is matched by one of them, so the pieces cover the text. The scanner below follows
// the alternatives in that order; each branch notes the alternative it stands for. It reads every
// character a bounded number of times (a white-space run at most twice), so it is linear in the text.
// \p{L}, \p{N} and \s follow Unicode 16.0 (unicode.hpp). The contraction rule matches case-
// insensitively by case folding, so "'ſ" (U+017F, long s) counts as "'s".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "unicode.hpp"

namespace qwen3::detail::pretokenize {

using detail::unicode::CharClass;

// One decoded character: its code point, length in bytes and class.
struct Char {
    char32_t cp = 0;
    int length = 0;  // 0 at the end of the text
    CharClass cls = CharClass::other;
};

// Classes of the ASCII characters, so that ASCII text never touches the big table.
struct AsciiClasses {
    CharClass cls[128];
    constexpr AsciiClasses() : cls() {
        for (int c = 0; c < 128; ++c) {
            CharClass k = CharClass::other;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k = CharClass::letter;
            else if (c >= '0' && c <= '9') k = CharClass::number;
            else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) k = CharClass::space;
            cls[c] = k;
        }
    }
};
inline constexpr AsciiClasses kAscii;

class Scanner {
public:
    explicit Scanner(std::string_view text)
        : begin_(reinterpret_cast<const unsigned char*>(text.data())), end_(begin_ + text.size()),
          table_(detail::unicode::property_table()) {}

    // Reads the character at p (p <= end; valid UTF-8).
    Char at(const unsigned char* p) const {
        if (p >= end_) return {};
        unsigned char c = *p;
        if (c < 0x80) return {c, 1, kAscii.cls[c]};
        int n = detail::unicode::utf8_lead_length(c);
        char32_t cp = detail::unicode::decode_utf8(p, n);
        return {cp, n, CharClass(table_.get(cp) & detail::unicode::kClassMask)};
    }

    // End of the run of characters of class `cls` starting at p.
    const unsigned char* skip_class(const unsigned char* p, CharClass cls) const {
        while (p < end_) {
            unsigned char c = *p;
            if (c < 0x80) {
                if (kAscii.cls[c] != cls) break;
                ++p;
                continue;
            }
            Char ch = at(p);
            if (ch.cls != cls) break;
            p += ch.length;
        }
        return p;
    }

    const unsigned char* skip_newlines(const unsigned char* p) const {
        while (p < end_ && (*p == '\r' || *p == '\n')) ++p;
        return p;
    }

    // Contraction letter after an apostrophe: ASCII letters lowercased, U+017F as 's', else 0.
    static char fold(const Char& c) {
        if (c.cp < 0x80) {
            char l = char(c.cp);
            return (l >= 'A' && l <= 'Z') ? char(l - 'A' + 'a') : l;
        }
        for (const auto& f : detail::unicode_data::kContractionFolds)
            if (f.code_point == c.cp) return f.letter;
        return 0;
    }

    // End of the piece that starts at p (p < end).
    const unsigned char* piece_end(const unsigned char* p) const {
        const Char c0 = at(p);
        const unsigned char* p1 = p + c0.length;
        if (c0.cp == '\'') {  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            const Char c1 = at(p1);
            char l1 = fold(c1);
            if (l1 == 's' || l1 == 't' || l1 == 'm' || l1 == 'd') return p1 + c1.length;
            if (l1 == 'r' || l1 == 'v' || l1 == 'l') {
                const Char c2 = at(p1 + c1.length);
                if (fold(c2) == (l1 == 'l' ? 'l' : 'e')) return p1 + c1.length + c2.length;
            }
        }
        if (c0.cls == CharClass::letter) return skip_class(p1, CharClass::letter);  // \p{L}+
        const bool newline = c0.cp == '\r' || c0.cp == '\n';
        const Char c1 = at(p1);
        if (!newline && c0.cls != CharClass::number && c1.cls == CharClass::letter)  // [^\r\n\p{L}\p{N}]\p{L}+
            return skip_class(p1 + c1.length, CharClass::letter);
        if (c0.cls == CharClass::number) return p1;  // \p{N}
        if (c0.cls == CharClass::other)  // [^\s\p{L}\p{N}]+[\r\n]*
            return skip_newlines(skip_class(p1, CharClass::other));
        if (c0.cp == ' ' && c1.cls == CharClass::other)  // ' '[^\s\p{L}\p{N}]+[\r\n]*
            return skip_newlines(skip_class(p1 + c1.length, CharClass::other));
        // c0 is white space: read the whole run
        const unsigned char* last_newline_end = nullptr;
        const unsigned char* last_start = p;
        const unsigned char* q = p;
        int count = 0;
        while (q < end_) {
            Char c = at(q);
            if (c.cls != CharClass::space) break;
            last_start = q;
            q += c.length;
            ++count;
            if (c.cp == '\r' || c.cp == '\n') last_newline_end = q;
        }
        if (last_newline_end) return last_newline_end;  // \s*[\r\n]+ (backtracks to the last newline)
        if (q == end_) return q;                           // \s+(?!\S) at the end of the text
        if (count >= 2) return last_start;                 // \s+(?!\S): all but the last, which joins what follows
        return q;                                          // \s+
    }

    const unsigned char* begin() const { return begin_; }
    const unsigned char* end() const { return end_; }

private:
    const unsigned char* begin_;
    const unsigned char* end_;
    const detail::unicode::PropertyTable& table_;
};

// Calls sink(std::string_view piece) for each piece of `text`, in order; the pieces concatenate to
// `text`. Precondition: `text` is valid UTF-8 (the tokenizer sanitizes its input first). `text` is one
// stretch between added tokens: its end counts as the end of text for the look-ahead (?!\S).
template <typename Sink>
void split(std::string_view text, Sink&& sink) {
    Scanner scanner(text);
    const unsigned char* p = scanner.begin();
    while (p < scanner.end()) {
        const unsigned char* q = scanner.piece_end(p);
        sink(std::string_view(reinterpret_cast<const char*>(p), std::size_t(q - p)));
        p = q;
    }
}

}  // namespace qwen3::detail::pretokenize
