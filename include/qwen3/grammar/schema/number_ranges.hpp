// qwen3/grammar/schema/number_ranges.hpp - exact decimal numbers and the GBNF of every number in a
// range, each written one way: JSON Schema's minimum/maximum (exclusive too) for integers and numbers.
// Decimal text throughout: a double would round 0.1 and big integers.
//
// Not its job: which bounds a schema asks for (json_schema.hpp reads them).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "gbnf_text.hpp"

namespace qwen3::detail::json_schema {

// ---------------------------------------------------------------------------------------------
// Exact decimal numbers, for bounds and for const values (a double would round 0.1 and big integers)

inline constexpr std::size_t kMaxDigits = 1000;         // longest integer or fraction written out
inline constexpr std::size_t kMaxBoundFraction = 64;    // fraction digits of a bound on a number

struct Decimal {
    bool negative = false;
    std::string digits;         // significant digits without leading or trailing zeros; empty for zero
    std::int64_t exponent = 0;  // value = digits * 10^exponent
    std::string text;           // as written, for messages

    bool is_zero() const { return digits.empty(); }
    bool is_integer() const { return exponent >= 0; }
    Decimal magnitude() const {
        Decimal d = *this;
        d.negative = false;
        return d;
    }
};

// Reads JSON number text (already known to be valid JSON).
inline Decimal parse_decimal(std::string_view text) {
    Decimal d;
    d.text = std::string(text);
    std::size_t i = 0;
    const bool negative = i < text.size() && text[i] == '-';
    if (negative) ++i;
    std::string mantissa;
    std::int64_t fraction = 0;
    auto is_digit = [&](std::size_t k) { return k < text.size() && text[k] >= '0' && text[k] <= '9'; };
    while (is_digit(i)) mantissa += text[i++];
    if (i < text.size() && text[i] == '.')
        for (++i; is_digit(i); ++i, ++fraction) mantissa += text[i];
    std::int64_t exponent = 0;
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        const bool exponent_negative = i < text.size() && text[i] == '-';
        if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
        // saturates far beyond any exponent that can be written out (kMaxDigits)
        for (; is_digit(i); ++i) exponent = std::min<std::int64_t>(exponent * 10 + (text[i] - '0'), 1'000'000'000'000);
        if (exponent_negative) exponent = -exponent;
    }
    const std::size_t first = mantissa.find_first_not_of('0');
    if (first == std::string::npos) return d;  // zero; -0 is 0
    mantissa.erase(0, first);
    const std::size_t last = mantissa.find_last_not_of('0');
    const auto trailing = std::int64_t(mantissa.size() - 1 - last);
    mantissa.erase(last + 1);
    d.negative = negative;
    d.digits = std::move(mantissa);
    d.exponent = exponent - fraction + trailing;
    return d;
}

inline int compare_magnitude(const Decimal& a, const Decimal& b) {
    if (a.is_zero() || b.is_zero()) return int(!a.is_zero()) - int(!b.is_zero());
    const std::int64_t lead_a = std::int64_t(a.digits.size()) + a.exponent;
    const std::int64_t lead_b = std::int64_t(b.digits.size()) + b.exponent;
    if (lead_a != lead_b) return lead_a < lead_b ? -1 : 1;
    const std::size_t n = std::min(a.digits.size(), b.digits.size());
    const int c = a.digits.compare(0, n, b.digits, 0, n);
    if (c != 0) return c < 0 ? -1 : 1;
    return a.digits.size() == b.digits.size() ? 0 : (a.digits.size() < b.digits.size() ? -1 : 1);
}

inline int compare(const Decimal& a, const Decimal& b) {
    if (a.negative != b.negative) return a.negative ? -1 : 1;
    const int c = compare_magnitude(a, b);
    return a.negative ? -c : c;
}

// The integer part of |d| as decimal digits ("0" for zero).
inline std::string integer_digits(const Decimal& d) {
    if (d.is_zero()) return "0";
    if (d.exponent >= 0) {
        if (d.digits.size() + std::uint64_t(d.exponent) > kMaxDigits)
            fail(ErrorCode::unsupported, "JSON Schema: the number ", d.text, " has more than ", kMaxDigits, " digits");
        return d.digits + std::string(std::size_t(d.exponent), '0');
    }
    const std::int64_t kept = std::int64_t(d.digits.size()) + d.exponent;
    return kept <= 0 ? "0" : d.digits.substr(0, std::size_t(kept));
}

// The digits after the decimal point of |d|, without trailing zeros ("" for an integer).
inline std::string fraction_digits(const Decimal& d, std::size_t limit = kMaxDigits) {
    if (d.exponent >= 0) return "";
    if (std::uint64_t(-d.exponent) > limit)
        fail(ErrorCode::unsupported, "JSON Schema: the number ", d.text, " has more than ", limit, " digits after the point");
    const auto places = std::size_t(-d.exponent);
    if (places > d.digits.size()) return std::string(places - d.digits.size(), '0') + d.digits;
    return d.digits.substr(d.digits.size() - places);
}

// The plain spelling of a number's value: 1.0 -> 1, 1e2 -> 100, 1.50 -> 1.5, -0 -> 0.
inline std::string plain_number(const Decimal& d) {
    if (d.is_zero()) return "0";
    std::string out = d.negative ? "-" : "";
    out += integer_digits(d);
    if (!d.is_integer()) out += "." + fraction_digits(d);
    return out;
}

// Whole numbers of any size, for integer bounds.
struct Integer {
    bool negative = false;
    std::string magnitude = "0";  // no leading zeros
};

inline int compare_naturals(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    const int c = a.compare(b);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

inline int compare(const Integer& a, const Integer& b) {
    if (a.negative != b.negative) return a.negative ? -1 : 1;
    const int c = compare_naturals(a.magnitude, b.magnitude);
    return a.negative ? -c : c;
}

inline std::string increment(std::string m) {
    for (std::size_t i = m.size(); i-- > 0;) {
        if (m[i] != '9') {
            ++m[i];
            return m;
        }
        m[i] = '0';
    }
    return "1" + m;
}

inline std::string decrement(std::string m) {  // m > 0
    for (std::size_t i = m.size(); i-- > 0;) {
        if (m[i] != '0') {
            --m[i];
            break;
        }
        m[i] = '9';
    }
    const std::size_t first = m.find_first_not_of('0');
    return first == std::string::npos ? "0" : m.substr(first);
}

inline Integer plus_one(Integer x) {
    if (!x.negative) return {false, increment(x.magnitude)};
    x.magnitude = decrement(x.magnitude);
    x.negative = x.magnitude != "0";
    return x;
}

inline Integer minus_one(Integer x) {
    if (x.negative) return {true, increment(x.magnitude)};
    if (x.magnitude == "0") return {true, "1"};
    return {false, decrement(x.magnitude)};
}

inline Integer truncate(const Decimal& d) {
    Integer t{false, integer_digits(d)};
    t.negative = d.negative && t.magnitude != "0";
    return t;
}

inline Integer ceil(const Decimal& d) {
    const Integer t = truncate(d);
    return !d.is_integer() && !d.negative ? plus_one(t) : t;
}

inline Integer floor(const Decimal& d) {
    const Integer t = truncate(d);
    return !d.is_integer() && d.negative ? minus_one(t) : t;
}

// ---------------------------------------------------------------------------------------------
// Digit-range expressions: text of exactly the numbers in a range, each written one way

inline std::string digit_class(char lo, char hi) {
    if (lo == hi) return std::string("\"") + lo + "\"";
    return std::string("[") + lo + "-" + hi + "]";
}

inline std::string any_digits(std::size_t n) { return n == 0 ? "" : n == 1 ? "[0-9]" : "[0-9]{" + std::to_string(n) + "}"; }

inline bool all_of(std::string_view s, char c) { return s.find_first_not_of(c) == std::string_view::npos; }

// Digit strings of s.size() digits that are >= s.
inline std::string at_least(std::string_view s) {
    if (all_of(s, '0')) return any_digits(s.size());
    if (s.size() == 1) return digit_class(s[0], '9');
    std::vector<std::string> alts{seq({digit_class(s[0], s[0]), at_least(s.substr(1))})};
    if (s[0] < '9') alts.push_back(seq({digit_class(char(s[0] + 1), '9'), any_digits(s.size() - 1)}));
    return choice(alts);
}

// Digit strings of s.size() digits that are <= s.
inline std::string at_most(std::string_view s) {
    if (all_of(s, '9')) return any_digits(s.size());
    if (s.size() == 1) return digit_class('0', s[0]);
    std::vector<std::string> alts{seq({digit_class(s[0], s[0]), at_most(s.substr(1))})};
    if (s[0] > '0') alts.push_back(seq({digit_class('0', char(s[0] - 1)), any_digits(s.size() - 1)}));
    return choice(alts);
}

// Digit strings from lo to hi, both of the same length, lo <= hi.
inline std::string digits_between(std::string_view lo, std::string_view hi) {
    if (lo == hi) return "\"" + std::string(lo) + "\"";
    std::size_t i = 0;
    while (lo[i] == hi[i]) ++i;
    const std::string prefix = i ? "\"" + std::string(lo.substr(0, i)) + "\"" : "";
    const char x = lo[i], y = hi[i];
    const std::string_view rest_lo = lo.substr(i + 1), rest_hi = hi.substr(i + 1);
    const bool low_full = all_of(rest_lo, '0'), high_full = all_of(rest_hi, '9');
    std::vector<std::string> alts;
    if (!low_full) alts.push_back(seq({digit_class(x, x), at_least(rest_lo)}));
    const char start = low_full ? x : char(x + 1), end = high_full ? y : char(y - 1);
    if (start <= end) alts.push_back(seq({digit_class(start, end), any_digits(rest_lo.size())}));
    if (!high_full) alts.push_back(seq({digit_class(y, y), at_most(rest_hi)}));
    return seq({prefix, choice(alts)});
}

// Natural numbers (no leading zeros) from lo to hi (none: unbounded), lo <= hi.
inline std::string naturals_between(const std::string& lo, const std::optional<std::string>& hi) {
    const std::size_t shortest = lo.size(), longest = hi ? hi->size() : lo.size();
    std::vector<std::string> alts;
    alts.push_back(digits_between(lo, hi && longest == shortest ? *hi : std::string(shortest, '9')));
    if (longest >= shortest + 2)  // every number of the lengths strictly between
        alts.push_back(seq({"[1-9]", longest - 2 == shortest ? any_digits(shortest)
                                                             : "[0-9]{" + std::to_string(shortest) + "," + std::to_string(longest - 2) + "}"}));
    if (hi && longest > shortest) alts.push_back(digits_between("1" + std::string(longest - 1, '0'), *hi));
    if (!hi) alts.push_back(seq({"[1-9]", any_digits(shortest), "[0-9]*"}));
    return choice(alts);
}

// Integers written plainly ("-"? and no leading zeros; no "-0") from lo to hi, either unbounded.
inline std::optional<std::string> integers_between(const std::optional<Integer>& lo, const std::optional<Integer>& hi) {
    if (lo && hi && compare(*lo, *hi) > 0) return std::nullopt;
    std::vector<std::string> alts;
    if (!lo || lo->negative) {  // negative values: magnitudes from max(1, -hi) to -lo
        const std::string smallest = hi && hi->negative ? hi->magnitude : "1";
        alts.push_back(seq({"\"-\"", naturals_between(smallest, lo ? std::optional(lo->magnitude) : std::nullopt)}));
    }
    if (!hi || !hi->negative)  // values >= 0
        alts.push_back(naturals_between(lo && !lo->negative ? lo->magnitude : "0", hi ? std::optional(hi->magnitude) : std::nullopt));
    return choice(alts);
}

struct Bound {
    Decimal value;
    bool exclusive = false;
};

// The optional fraction ("." digits) of a number whose integer part is fixed, such that 0.F lies
// between 0.lower and 0.upper (each optional, inclusive or exclusive; lower <= upper). Walks the digits
// while they equal a bound's ("tight"): there the next digit is limited; once below the upper or above
// the lower bound, anything may follow. A bound's digits have no trailing zeros, so a fraction that
// stops before a bound's last digit is below it.
class FractionRange {
public:
    FractionRange(std::optional<std::string> lower, bool lower_exclusive, std::optional<std::string> upper, bool upper_exclusive)
        : lower_(std::move(lower)), upper_(std::move(upper)), lower_exclusive_(lower_exclusive), upper_exclusive_(upper_exclusive) {}

    // "" when only "no fraction" fits, nullopt when nothing does.
    std::optional<std::string> expression() const {
        const bool tight_lower = lower_.has_value(), tight_upper = upper_.has_value();
        const bool none_ok = may_stop(0, tight_lower, tight_upper);
        const std::optional<std::string> digits = from(0, tight_lower, tight_upper, false);
        if (!digits) return none_ok ? std::optional<std::string>("") : std::nullopt;
        const std::string with_point = seq({"\".\"", *digits});
        return none_ok ? "(" + with_point + ")?" : with_point;
    }

private:
    bool may_stop(std::size_t i, bool tight_lower, bool tight_upper) const {
        if (tight_lower && (i < lower_->size() || lower_exclusive_)) return false;
        if (tight_upper && i >= upper_->size() && upper_exclusive_) return false;
        return true;
    }

    std::optional<std::string> from(std::size_t i, bool tight_lower, bool tight_upper, bool may_end) const {
        if (tight_lower && i >= lower_->size() && !lower_exclusive_) tight_lower = false;  // equal so far: enough
        if (!tight_lower && !tight_upper) return std::string(may_end ? "[0-9]*" : "[0-9]+");
        if (tight_upper && i >= upper_->size()) {  // equal to the upper bound so far: only zeros may follow
            if (upper_exclusive_ || tight_lower) return std::nullopt;
            return std::string(may_end ? "\"0\"*" : "\"0\"+");
        }
        if (tight_lower && i >= lower_->size() && !tight_upper)  // equal to an exclusive lower bound: need a nonzero digit
            return std::string("\"0\"* [1-9] [0-9]*");
        const char low = tight_lower && i < lower_->size() ? (*lower_)[i] : '0';
        const char high = tight_upper ? (*upper_)[i] : '9';
        std::vector<std::string> alts;
        for (char d = low; d <= high;) {
            // only the bounds' own digits keep the walk tight; the digits between them free it
            const bool next_lower = tight_lower && d == low, next_upper = tight_upper && d == high;
            char last = d;
            if (!next_lower && !next_upper) last = tight_upper ? char(high - 1) : high;
            if (const auto rest = from(i + 1, next_lower, next_upper, true)) alts.push_back(seq({digit_class(d, last), *rest}));
            d = char(last + 1);
        }
        const bool stop = may_end && may_stop(i, tight_lower, tight_upper);
        if (alts.empty()) return stop ? std::optional<std::string>("") : std::nullopt;
        return stop ? "(" + choice(alts) + ")?" : choice(alts);
    }

    std::optional<std::string> lower_, upper_;
    bool lower_exclusive_, upper_exclusive_;
};

inline std::string natural_literal(const std::string& digits) { return "\"" + digits + "\""; }

// Numbers >= 0 written plainly (no exponent) between lower (>= 0) and upper (none: unbounded).
inline std::optional<std::string> plain_numbers_between(const Bound& lower, const std::optional<Bound>& upper) {
    if (upper) {
        const int c = compare(lower.value, upper->value);
        if (c > 0 || (c == 0 && (lower.exclusive || upper->exclusive))) return std::nullopt;
    }
    const std::string lower_int = integer_digits(lower.value), lower_frac = fraction_digits(lower.value, kMaxBoundFraction);
    const std::string upper_int = upper ? integer_digits(upper->value) : "";
    const std::string upper_frac = upper ? fraction_digits(upper->value, kMaxBoundFraction) : "";
    if (upper && lower_int == upper_int) {
        const auto fraction = FractionRange(lower_frac, lower.exclusive, upper_frac, upper->exclusive).expression();
        if (!fraction) return std::nullopt;
        return seq({natural_literal(lower_int), *fraction});
    }
    std::vector<std::string> alts;
    if (const auto fraction = FractionRange(lower_frac, lower.exclusive, std::nullopt, false).expression())
        alts.push_back(seq({natural_literal(lower_int), *fraction}));
    const std::string middle_lo = increment(lower_int);
    const std::optional<std::string> middle_hi = upper ? std::optional(decrement(upper_int)) : std::nullopt;
    if (!middle_hi || compare_naturals(middle_lo, *middle_hi) <= 0)
        alts.push_back(seq({naturals_between(middle_lo, middle_hi), "(\".\" [0-9]+)?"}));
    if (upper)
        if (const auto fraction = FractionRange(std::nullopt, false, upper_frac, upper->exclusive).expression())
            alts.push_back(seq({natural_literal(upper_int), *fraction}));
    if (alts.empty()) return std::nullopt;
    return choice(alts);
}

// Numbers written plainly (-? integer part, optional fraction; no exponent, no -0) within the bounds.
inline std::optional<std::string> plain_numbers_within(const std::optional<Bound>& lower, const std::optional<Bound>& upper) {
    std::vector<std::string> alts;
    if (!upper || !upper->value.negative) {  // values >= 0
        const Bound from_zero = lower && !lower->value.negative ? *lower : Bound{};
        if (auto r = plain_numbers_between(from_zero, upper)) alts.push_back(*r);
    }
    if (!lower || lower->value.negative) {  // values < 0, by magnitude
        Bound smallest{Decimal{}, true};
        if (upper && upper->value.negative) smallest = {upper->value.magnitude(), upper->exclusive};
        std::optional<Bound> largest;
        if (lower) largest = Bound{lower->value.magnitude(), lower->exclusive};
        if (auto r = plain_numbers_between(smallest, largest)) alts.push_back(seq({"\"-\"", *r}));
    }
    if (alts.empty()) return std::nullopt;
    return choice(alts);
}

}  // namespace qwen3::detail::json_schema
