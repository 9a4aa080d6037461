// qwen3/chat/jinja/interpreter.hpp - runs a parsed chat template with Python Jinja2's meanings.
//
// Use: jinja::Program p = jinja::parse(src); Text out = jinja::render(p, variables);
// Not its job: reading the template (parser.hpp); what the variables of a chat request are
// (chat/chat_template.hpp).
//
// Jinja2 as transformers' apply_chat_template runs it: an ImmutableSandboxedEnvironment (lists and
// dicts cannot be changed in place), the default Undefined (a missing name or key prints as nothing,
// is false, and is an error when added to or called), loop controls, and tojson as
// json.dumps(ensure_ascii=False). Filters, tests and methods are the ones chat templates use; any
// other is an Error(invalid_argument) naming it and its line, as is every Python error a template
// can raise (a str added to an int, raise_exception(...)). Bounded: macro recursion, loop
// iterations and output size have limits, so a hostile template fails instead of hanging.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "parser.hpp"
#include "value.hpp"

namespace qwen3::chat::jinja {

struct Macro {
    std::string name;
    std::vector<std::pair<std::string, ExprPtr>> params;
    Body body;
};

struct RenderLimits {
    std::size_t max_output_bytes = std::size_t(64) << 20;
    std::uint64_t max_allocated_bytes = std::uint64_t(1) << 30;  // strings, lists and dicts made, live or not
    std::uint64_t max_steps = std::uint64_t(1) << 26;  // statements and loop iterations
    int max_call_depth = 64;                           // nested macro calls
};

namespace detail {

// Python's str.isspace() for one code point.
inline bool is_space(std::uint32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

inline std::uint32_t decode_at(std::string_view s, std::size_t i, std::size_t* length) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (i + n > s.size()) n = 1;
    std::uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    *length = n;
    return cp;
}

class Interpreter {
public:
    Interpreter(Dict globals, RenderLimits limits) : limits_(limits) { scopes_.push_back(std::move(globals)); }

    Text run(const Program& program) {
        struct Spending {  // the budget for this render, the caller's restored after it
            explicit Spending(std::uint64_t bytes) : budget{bytes}, saved(jinja::detail::allocation_budget) {
                jinja::detail::allocation_budget = &budget;
            }
            ~Spending() { jinja::detail::allocation_budget = saved; }
            jinja::detail::AllocationBudget budget;
            jinja::detail::AllocationBudget* saved;
        } spending(limits_.max_allocated_bytes);
        Text out;
        if (exec(program.body, out) != Flow::normal) fail(0, "'{% break %}' or '{% continue %}' outside a loop");
        return out;
    }

private:
    enum class Flow { normal, break_, continue_ };

    template <class... A>
    [[noreturn]] static void fail(int line, const A&... a) {
        if (line > 0) qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: line ", line, ": ", a...);
        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: ", a...);
    }

    void step(int line) {
        if (++steps_ > limits_.max_steps) fail(line, "more than ", limits_.max_steps, " steps (RenderLimits::max_steps)");
    }
    void emit(Text& out, const Text& t, int line) {
        out.append(t);
        if (out.bytes.size() > limits_.max_output_bytes)
            fail(line, "the output passes ", limits_.max_output_bytes, " bytes (RenderLimits::max_output_bytes)");
    }

    // ---- names

    Value lookup(const std::string& name) const {
        for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s)
            for (const auto& [k, v] : *s)
                if (k == name) return v;
        return builtin(name);
    }
    void assign(const std::string& name, Value v) {
        Dict& scope = scopes_.back();
        for (auto& [k, x] : scope)
            if (k == name) {
                x = std::move(v);
                return;
            }
        scope.emplace_back(name, std::move(v));
    }

    // ---- statements

    Flow exec(const Body& body, Text& out) {
        for (const auto& s : body) {
            step(s->line);
            switch (s->kind) {
                case Stmt::Kind::text: emit(out, Text::trusted(s->text), s->line); break;
                case Stmt::Kind::output: emit(out, str_of(eval(*s->expr)), s->line); break;
                case Stmt::Kind::if_: {
                    const Body* chosen = &s->else_body;
                    for (const auto& [condition, branch] : s->branches)
                        if (eval(*condition).truthy()) {
                            chosen = &branch;
                            break;
                        }
                    const Flow f = exec(*chosen, out);
                    if (f != Flow::normal) return f;
                    break;
                }
                case Stmt::Kind::for_: exec_for(*s, out); break;
                case Stmt::Kind::set: {
                    Value v = eval(*s->expr);
                    if (s->member) {
                        const Value target = lookup(s->targets[0]);
                        if (target.kind() != Value::Kind::names)
                            fail(s->line, "'{% set ", s->targets[0], ".", s->targets[1], " %}' needs a namespace(), not ", type_name(target));
                        Dict& members = target.mutable_members();
                        auto it = std::find_if(members.begin(), members.end(), [&](const auto& p) { return p.first == s->targets[1]; });
                        if (it != members.end()) it->second = std::move(v);
                        else members.emplace_back(s->targets[1], std::move(v));
                    } else if (s->targets.size() == 1) {
                        assign(s->targets[0], std::move(v));
                    } else {
                        unpack(s->targets, v, s->line);
                    }
                    break;
                }
                case Stmt::Kind::set_block: {
                    Text captured;
                    exec(s->body, captured);
                    assign(s->targets[0], Value::string(std::move(captured)));
                    break;
                }
                case Stmt::Kind::macro: {
                    auto m = std::make_shared<Macro>(Macro{s->name, s->params, s->body});
                    assign(s->name, Value::macro(std::move(m)));
                    break;
                }
                case Stmt::Kind::call_block: fail(s->line, "'{% call %}' is not supported");
                case Stmt::Kind::break_: return Flow::break_;
                case Stmt::Kind::continue_: return Flow::continue_;
                case Stmt::Kind::block: {
                    const Flow f = exec(s->body, out);
                    if (f != Flow::normal) return f;
                    break;
                }
            }
        }
        return Flow::normal;
    }

    void unpack(const std::vector<std::string>& names, const Value& v, int line) {
        const List items = iterate(v, line);
        if (items.size() != names.size())
            fail(line, "cannot unpack ", items.size(), " values into ", names.size(), " names");
        for (std::size_t i = 0; i < names.size(); ++i) assign(names[i], items[i]);
    }

    void exec_for(const Stmt& s, Text& out) {
        const List all = iterate(eval(*s.expr), s.line);
        List items;
        if (s.filter) {
            for (const Value& item : all) {
                scopes_.emplace_back();
                bind_target(s, item);
                const bool keep = eval(*s.filter).truthy();
                scopes_.pop_back();
                if (keep) items.push_back(item);
            }
        } else {
            items = all;
        }
        if (items.empty()) {
            exec(s.else_body, out);
            return;
        }
        const auto n = std::int64_t(items.size());
        for (std::int64_t i = 0; i < n; ++i) {
            step(s.line);
            scopes_.emplace_back();
            Dict loop{{"index", Value::integer(i + 1)},
                      {"index0", Value::integer(i)},
                      {"revindex", Value::integer(n - i)},
                      {"revindex0", Value::integer(n - i - 1)},
                      {"first", Value::boolean(i == 0)},
                      {"last", Value::boolean(i == n - 1)},
                      {"length", Value::integer(n)},
                      {"depth", Value::integer(1)},
                      {"depth0", Value::integer(0)},
                      {"previtem", i > 0 ? items[std::size_t(i - 1)] : Value()},
                      {"nextitem", i + 1 < n ? items[std::size_t(i + 1)] : Value()}};
            const std::int64_t index = i;
            loop.emplace_back("cycle", Value::function("loop.cycle", [index](std::vector<Value>& args, auto&) {
                if (args.empty()) qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: loop.cycle() needs arguments");
                return args[std::size_t(index % std::int64_t(args.size()))];
            }));
            assign("loop", Value::dict(std::move(loop)));
            bind_target(s, items[std::size_t(i)]);
            const Flow f = exec(s.body, out);
            scopes_.pop_back();
            if (f == Flow::break_) break;
        }
    }
    void bind_target(const Stmt& s, const Value& item) {
        if (s.targets.size() == 1) assign(s.targets[0], item);
        else unpack(s.targets, item, s.line);
    }

    // The items of an iterable: a list, a dict's keys, a string's characters; Undefined is empty.
    static List iterate(const Value& v, int line) {
        switch (v.kind()) {
            case Value::Kind::undefined: return {};
            case Value::Kind::list: return v.items();
            case Value::Kind::dict:
            case Value::Kind::names: {
                List keys;
                for (const auto& [k, x] : v.members()) keys.push_back(key_value(v, k));
                return keys;
            }
            case Value::Kind::string: {
                List chars;
                const std::string& s = v.str_bytes();
                for (std::size_t i = 0, n = 0; i < s.size(); i += n) {
                    decode_at(s, i, &n);
                    chars.push_back(Value::string(v.text().slice(i, i + n)));
                }
                return chars;
            }
            default: fail(line, "'", type_name(v), "' object is not iterable");
        }
    }
    static Value key_value(const Value& dict, const std::string& key) {
        return Value::string(dict.from_data() ? Text::from_data(key) : Text::trusted(key));
    }

    // ---- expressions

    Value eval(const Expr& e) {
        switch (e.kind) {
            case Expr::Kind::literal: return e.value;
            case Expr::Kind::name: return lookup(e.name);
            case Expr::Kind::attribute: return attribute(eval(*e.args[0]), e.name, e.line);
            case Expr::Kind::item: return item(eval(*e.args[0]), eval(*e.args[1]), e.line);
            case Expr::Kind::slice: return slice(e);
            case Expr::Kind::call: return call(e);
            case Expr::Kind::filter: return filter(e);
            case Expr::Kind::test: {
                const bool r = test(e);
                return Value::boolean(e.negated ? !r : r);
            }
            case Expr::Kind::unary: {
                const Value v = eval(*e.args[0]);
                if (e.name == "not") return Value::boolean(!v.truthy());
                if (!v.is_number() && v.kind() != Value::Kind::boolean)
                    fail(e.line, "bad operand type for unary ", e.name, ": '", type_name(v), "'");
                if (e.name == "+") return v.kind() == Value::Kind::boolean ? Value::integer(v.as_bool()) : v;
                if (v.is_big()) fail(e.line, "arithmetic on an integer past 64 bits is not supported");
                if (v.kind() == Value::Kind::floating) return Value::floating(-v.as_double());
                return Value::integer(-(v.kind() == Value::Kind::boolean ? std::int64_t(v.as_bool()) : v.as_integer()));
            }
            case Expr::Kind::binary: return binary(e);
            case Expr::Kind::conditional: {
                if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
                return e.args.size() > 2 ? eval(*e.args[2]) : Value();
            }
            case Expr::Kind::list:
            case Expr::Kind::tuple: {
                List items;
                for (const auto& x : e.args) items.push_back(eval(*x));
                return e.kind == Expr::Kind::tuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
            }
            case Expr::Kind::dict: {
                Dict items;
                bool keys_from_data = false;
                for (std::size_t i = 0; i + 1 < e.args.size(); i += 2) {
                    const Value k = eval(*e.args[i]);
                    keys_from_data = keys_from_data || (k.is_string() && k.text().any_untrusted());
                    if (!k.is_string()) fail(e.line, "dict literal keys must be strings here, not ", type_name(k));
                    Value v = eval(*e.args[i + 1]);
                    auto it = std::find_if(items.begin(), items.end(), [&](const auto& p) { return p.first == k.str_bytes(); });
                    if (it != items.end()) it->second = std::move(v);
                    else items.emplace_back(k.str_bytes(), std::move(v));
                }
                return Value::dict(std::move(items), keys_from_data);
            }
        }
        return {};
    }

    static std::int64_t as_int(const Value& v, int line, std::string_view what) {
        if (v.is_big()) fail(line, what, " past 64 bits is not supported");
        if (v.kind() == Value::Kind::integer) return v.as_integer();
        if (v.kind() == Value::Kind::boolean) return v.as_bool();
        fail(line, what, " must be an integer, not ", type_name(v));
    }

    Value attribute(const Value& obj, const std::string& name, int line) {
        if (obj.is_undefined()) fail(line, "'", name, "' of an undefined value (a missing name or key)");
        if (Value m = method(obj, name, line); !m.is_undefined()) return m;
        if (obj.is_mapping()) {
            const Value* v = obj.member(name);
            return v ? *v : Value();
        }
        return {};
    }
    Value item(const Value& obj, const Value& key, int line) {
        if (obj.is_undefined()) fail(line, "a subscript of an undefined value (a missing name or key)");
        if (obj.is_mapping()) {
            if (key.is_string()) {
                if (const Value* v = obj.member(key.str_bytes())) return *v;
                return method(obj, key.str_bytes(), line);
            }
            return {};
        }
        if (obj.is_list() || obj.is_string()) {
            if (key.is_string()) return method(obj, key.str_bytes(), line);
            if (key.kind() != Value::Kind::integer && key.kind() != Value::Kind::boolean) return {};
            std::int64_t i = as_int(key, line, "an index");
            if (obj.is_list()) {
                const auto n = std::int64_t(obj.items().size());
                if (i < 0) i += n;
                return i >= 0 && i < n ? obj.items()[std::size_t(i)] : Value();
            }
            const auto at = code_point_offsets(obj.str_bytes());
            const auto n = std::int64_t(at.size() - 1);
            if (i < 0) i += n;
            if (i < 0 || i >= n) return {};
            return Value::string(obj.text().slice(at[std::size_t(i)], at[std::size_t(i) + 1]));
        }
        return {};
    }
    Value slice(const Expr& e) {
        const Value obj = eval(*e.args[0]);
        if (!obj.is_list() && !obj.is_string()) fail(e.line, "'", type_name(obj), "' object is not subscriptable");
        auto bound = [&](const ExprPtr& x) -> std::optional<std::int64_t> {
            if (!x) return std::nullopt;
            const Value v = eval(*x);
            if (v.is_none()) return std::nullopt;
            return as_int(v, e.line, "a slice index");
        };
        const std::optional<std::int64_t> start = bound(e.args[1]), stop = bound(e.args[2]), by = bound(e.args[3]);
        const std::int64_t stride = by.value_or(1);
        if (stride == 0) fail(e.line, "slice step cannot be zero");
        std::vector<std::size_t> at;
        std::int64_t n;
        if (obj.is_list()) {
            n = std::int64_t(obj.items().size());
        } else {
            at = code_point_offsets(obj.str_bytes());
            n = std::int64_t(at.size() - 1);
        }
        auto clamp = [&](std::optional<std::int64_t> v, std::int64_t fallback) {  // Python's slice.indices
            if (!v) return fallback;
            std::int64_t x = *v;
            if (x < 0) x += n;
            if (stride > 0) return std::clamp<std::int64_t>(x, 0, n);
            return std::clamp<std::int64_t>(x, -1, n - 1);
        };
        const std::int64_t lo = clamp(start, stride > 0 ? 0 : n - 1), hi = clamp(stop, stride > 0 ? n : -1);
        std::vector<std::int64_t> picks;
        for (std::int64_t i = lo; stride > 0 ? i < hi : i > hi; i += stride) picks.push_back(i);
        if (obj.is_list()) {
            List out;
            for (std::int64_t i : picks) out.push_back(obj.items()[std::size_t(i)]);
            return obj.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
        }
        Text out;
        for (std::int64_t i : picks) out.append(obj.text().slice(at[std::size_t(i)], at[std::size_t(i) + 1]));
        return Value::string(std::move(out));
    }

    Value binary(const Expr& e) {
        const std::string& op = e.name;
        if (op == "and") {
            Value a = eval(*e.args[0]);
            return a.truthy() ? eval(*e.args[1]) : a;
        }
        if (op == "or") {
            Value a = eval(*e.args[0]);
            return a.truthy() ? a : eval(*e.args[1]);
        }
        const Value a = eval(*e.args[0]), b = eval(*e.args[1]);
        if (op == "==") return Value::boolean(equal(a, b));
        if (op == "!=") return Value::boolean(!equal(a, b));
        if (op == "in") return Value::boolean(contains(b, a, e.line));
        if (op == "not in") return Value::boolean(!contains(b, a, e.line));
        if (op == "<" || op == ">" || op == "<=" || op == ">=") {
            const int c = compare(a, b, e.line, op);
            return Value::boolean(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
        }
        if (op == "~") {
            Text t = str_of(a);
            t.append(str_of(b));
            return Value::string(std::move(t));
        }
        if (a.is_undefined() || b.is_undefined())
            fail(e.line, "'", op, "' with an undefined value (a missing name or key)");
        auto numeric = [](const Value& v) { return v.is_number() || v.kind() == Value::Kind::boolean; };
        auto as_num = [](const Value& v) { return v.kind() == Value::Kind::boolean ? Value::integer(v.as_bool()) : v; };
        if (op == "+") {
            if (a.is_string() && b.is_string()) {
                Text t = a.text();
                t.append(b.text());
                return Value::string(std::move(t));
            }
            if (a.is_list() && b.is_list()) {
                List out = a.items();
                out.insert(out.end(), b.items().begin(), b.items().end());
                return Value::list(std::move(out));
            }
        }
        if (op == "*" && (((a.is_string() || a.is_list()) && numeric(b)) || ((b.is_string() || b.is_list()) && numeric(a)))) {
            const Value& seq = a.is_string() || a.is_list() ? a : b;
            const std::int64_t times = as_int(as_num(&seq == &a ? b : a), e.line, "a repetition count");
            if (times > 0 && (seq.is_string() ? seq.str_bytes().size() : seq.items().size()) * std::uint64_t(times) > limits_.max_output_bytes)
                fail(e.line, "a repetition past RenderLimits::max_output_bytes");
            if (seq.is_string()) {
                Text t;
                for (std::int64_t i = 0; i < times; ++i) t.append(seq.text());
                return Value::string(std::move(t));
            }
            List out;
            for (std::int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
            return Value::list(std::move(out));
        }
        if (!numeric(a) || !numeric(b))
            fail(e.line, "unsupported operand types for ", op, ": '", type_name(a), "' and '", type_name(b), "'");
        if (a.is_big() || b.is_big()) fail(e.line, "arithmetic on an integer past 64 bits is not supported");
        const Value x = as_num(a), y = as_num(b);
        const bool ints = x.kind() == Value::Kind::integer && y.kind() == Value::Kind::integer;
        if (op == "/") {
            if (y.as_double() == 0) fail(e.line, "division by zero");
            return Value::floating(x.as_double() / y.as_double());
        }
        if (ints) {
            const std::int64_t p = x.as_integer(), q = y.as_integer();
            if (op == "+") return Value::integer(p + q);
            if (op == "-") return Value::integer(p - q);
            if (op == "*") return Value::integer(p * q);
            if (op == "//" || op == "%") {
                if (q == 0) fail(e.line, "integer division or modulo by zero");
                std::int64_t d = p / q, r = p % q;
                if (r != 0 && ((r < 0) != (q < 0))) --d, r += q;  // Python floors
                return Value::integer(op == "//" ? d : r);
            }
            if (op == "**") {
                if (q < 0) return Value::floating(std::pow(double(p), double(q)));
                std::int64_t r = 1;
                for (std::int64_t i = 0; i < q && i < 64; ++i) r *= p;
                return Value::integer(r);
            }
        }
        const double p = x.as_double(), q = y.as_double();
        if (op == "+") return Value::floating(p + q);
        if (op == "-") return Value::floating(p - q);
        if (op == "*") return Value::floating(p * q);
        if (op == "**") return Value::floating(std::pow(p, q));
        if (op == "//" || op == "%") {
            if (q == 0) fail(e.line, "float division or modulo by zero");
            const double r = std::fmod(p, q);
            const double m = r != 0 && ((r < 0) != (q < 0)) ? r + q : r;
            return Value::floating(op == "%" ? m : std::floor(p / q));
        }
        fail(e.line, "the operator '", op, "' is not supported");
    }

    static int compare(const Value& a, const Value& b, int line, const std::string& op) {
        auto numeric = [](const Value& v) { return v.is_number() || v.kind() == Value::Kind::boolean; };
        if (numeric(a) && numeric(b)) {
            const double x = a.kind() == Value::Kind::boolean ? a.as_bool() : a.as_double();
            const double y = b.kind() == Value::Kind::boolean ? b.as_bool() : b.as_double();
            if (a.kind() == Value::Kind::integer && b.kind() == Value::Kind::integer && !a.is_big() && !b.is_big())
                return a.as_integer() < b.as_integer() ? -1 : a.as_integer() > b.as_integer();
            return x < y ? -1 : x > y;
        }
        if (a.is_string() && b.is_string()) return a.str_bytes().compare(b.str_bytes()) < 0 ? -1 : a.str_bytes() != b.str_bytes();
        if (a.is_list() && b.is_list()) {
            for (std::size_t i = 0; i < a.items().size() && i < b.items().size(); ++i)
                if (!equal(a.items()[i], b.items()[i])) return compare(a.items()[i], b.items()[i], line, op);
            return a.items().size() < b.items().size() ? -1 : a.items().size() > b.items().size();
        }
        fail(line, "'", op, "' not supported between instances of '", type_name(a), "' and '", type_name(b), "'");
    }

    static bool contains(const Value& container, const Value& x, int line) {
        switch (container.kind()) {
            case Value::Kind::undefined: return false;
            case Value::Kind::string:
                if (!x.is_string()) fail(line, "'in <string>' requires string as left operand, not ", type_name(x));
                return container.str_bytes().find(x.str_bytes()) != std::string::npos;
            case Value::Kind::list:
                for (const Value& v : container.items())
                    if (equal(v, x)) return true;
                return false;
            case Value::Kind::dict:
            case Value::Kind::names: return x.is_string() && container.member(x.str_bytes());
            default: fail(line, "argument of type '", type_name(container), "' is not iterable");
        }
    }

    // ---- calls

    struct Args {
        std::vector<Value> positional;
        std::vector<std::pair<std::string, Value>> named;
    };
    Args arguments(const Expr& e, std::size_t skip) {
        Args a;
        for (std::size_t i = skip; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i]));
        for (const auto& [k, x] : e.kwargs) a.named.emplace_back(k, eval(*x));
        return a;
    }
    // argument `index` or named `name` of a function, else `fallback`
    static Value arg(const Args& a, std::size_t index, std::string_view name, Value fallback = {}) {
        for (const auto& [k, v] : a.named)
            if (k == name) return v;
        return index < a.positional.size() ? a.positional[index] : fallback;
    }

    Value call(const Expr& e) {
        const Value callee = eval(*e.args[0]);
        Args a = arguments(e, 1);
        if (callee.kind() == Value::Kind::function) {
            try {
                return callee.as_function()(a.positional, a.named);
            } catch (const Error& err) {  // the line of the call, once
                std::string_view what = err.what();
                if (what.rfind("chat template: ", 0) == 0) what.remove_prefix(15);
                if (callee.function_name() == "raise_exception") fail(e.line, what);
                fail(e.line, callee.function_name(), "(): ", what);
            }
        }
        if (callee.kind() == Value::Kind::macro) return call_macro(callee.as_macro(), a, e.line);
        if (callee.is_undefined()) fail(e.line, "a call of an undefined value (a missing name, function or method)");
        fail(e.line, "'", type_name(callee), "' object is not callable");
    }

    Value call_macro(const Macro& m, const Args& a, int line) {
        if (++depth_ > limits_.max_call_depth) fail(line, "macro calls nested deeper than ", limits_.max_call_depth);
        if (a.positional.size() > m.params.size()) fail(line, "the macro '", m.name, "' takes ", m.params.size(), " arguments");
        Dict scope;
        for (std::size_t i = 0; i < m.params.size(); ++i) {
            const auto& [name, def] = m.params[i];
            Value v = i < a.positional.size() ? a.positional[i] : Value();
            bool given = i < a.positional.size();
            for (const auto& [k, x] : a.named)
                if (k == name) v = x, given = true;
            if (!given && def) v = eval(*def);
            scope.emplace_back(name, std::move(v));
        }
        for (const auto& named : a.named) {
            const std::string& key = named.first;
            if (std::none_of(m.params.begin(), m.params.end(), [&](const auto& p) { return p.first == key; }))
                fail(line, "the macro '", m.name, "' has no parameter '", key, "'");
        }
        std::vector<Dict> saved;
        saved.swap(scopes_);
        scopes_.push_back(saved.front());  // the template's top level
        scopes_.push_back(std::move(scope));
        Text out;
        try {
            exec(m.body, out);
        } catch (...) {
            scopes_.swap(saved);
            --depth_;
            throw;
        }
        scopes_.swap(saved);
        --depth_;
        return Value::string(std::move(out));
    }

    Value builtin(const std::string& name) const {
        if (name == "raise_exception")
            return Value::function(name, [](std::vector<Value>& args, auto&) -> Value {
                const std::string message = args.empty() ? std::string() : str_of(args[0]).bytes;
                qwen3::detail::fail(ErrorCode::invalid_argument, "the template raised an error: ", message);
            });
        if (name == "namespace" || name == "dict") {
            const bool names = name == "namespace";
            return Value::function(name, [names](std::vector<Value>& args, auto& named) {  // from mappings and keywords
                Dict members;
                bool keys_from_data = false;
                for (const Value& a : args)
                    if (a.is_mapping()) members.insert(members.end(), a.members().begin(), a.members().end()), keys_from_data |= a.from_data();
                for (auto& [k, v] : named) members.emplace_back(k, v);
                return names ? Value::names(std::move(members), keys_from_data) : Value::dict(std::move(members), keys_from_data);
            });
        }
        if (name == "range")
            return Value::function(name, [](std::vector<Value>& args, auto&) {
                std::int64_t lo = 0, hi = 0, by = 1;
                auto num = [](const Value& v) { return as_int(v, 0, "range()'s argument"); };
                if (args.size() == 1) hi = num(args[0]);
                else if (args.size() >= 2) lo = num(args[0]), hi = num(args[1]);
                if (args.size() >= 3) by = num(args[2]);
                if (by == 0) qwen3::detail::fail(ErrorCode::invalid_argument, "range() arg 3 must not be zero");
                List out;
                for (std::int64_t i = lo; by > 0 ? i < hi : i > hi; i += by) {
                    if (out.size() >= (std::size_t(1) << 20)) qwen3::detail::fail(ErrorCode::invalid_argument, "range() of more than 2^20 items");
                    out.push_back(Value::integer(i));
                }
                return Value::list(std::move(out));
            });
        return {};
    }

    // ---- methods of str, dict and list

    Value method(const Value& obj, const std::string& name, int line) {
        if (obj.is_string()) return string_method(obj, name, line);
        if (obj.is_dict()) {
            const Value self = obj;
            if (name == "items")
                return Value::function("dict.items", [self](auto&, auto&) {
                    List out;
                    for (const auto& [k, v] : self.members()) out.push_back(Value::tuple({key_value(self, k), v}));
                    return Value::list(std::move(out));
                });
            if (name == "keys")
                return Value::function("dict.keys", [self](auto&, auto&) {
                    List out;
                    for (const auto& [k, v] : self.members()) out.push_back(key_value(self, k));
                    return Value::list(std::move(out));
                });
            if (name == "values")
                return Value::function("dict.values", [self](auto&, auto&) {
                    List out;
                    for (const auto& [k, v] : self.members()) out.push_back(v);
                    return Value::list(std::move(out));
                });
            if (name == "get")
                return Value::function("dict.get", [self](std::vector<Value>& args, auto&) {
                    if (args.empty()) qwen3::detail::fail(ErrorCode::invalid_argument, "get expected at least 1 argument");
                    const Value* v = args[0].is_string() ? self.member(args[0].str_bytes()) : nullptr;
                    return v ? *v : args.size() > 1 ? args[1] : Value::none();
                });
            if (name == "update" || name == "pop" || name == "setdefault" || name == "clear" || name == "popitem") return unsafe("dict", name);
            return {};
        }
        if (obj.is_list()) {
            if (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" || name == "sort" ||
                name == "reverse" || name == "clear")
                return unsafe("list", name);
            return {};
        }
        (void)line;
        return {};
    }
    static Value unsafe(std::string type, std::string name) {
        return Value::function(type + "." + name, [type, name](auto&, auto&) -> Value {
            qwen3::detail::fail(ErrorCode::invalid_argument, "the sandbox does not let a template change a ", type, " (", name, ")");
        });
    }

    // Python's strip family over code points: `chars` (a str) or whitespace.
    static Text strip(const Text& t, const Value& chars, bool left, bool right) {
        const std::string& s = t.bytes;
        auto drop = [&](std::uint32_t cp) {
            if (chars.is_none() || chars.is_undefined()) return is_space(cp);
            const std::string& set = chars.str_bytes();
            for (std::size_t i = 0, n = 0; i < set.size(); i += n)
                if (decode_at(set, i, &n) == cp) return true;
            return false;
        };
        const auto at = code_point_offsets(s);
        std::size_t lo = 0, hi = at.size() - 1;
        std::size_t n = 0;
        while (left && lo < hi && drop(decode_at(s, at[lo], &n))) ++lo;
        while (right && hi > lo && drop(decode_at(s, at[hi - 1], &n))) --hi;
        return t.slice(at[lo], at[hi]);
    }

    Value string_method(const Value& obj, const std::string& name, int line) {
        const Value self = obj;
        auto fn = [&](auto body) { return Value::function("str." + name, body); };
        auto need_str = [name](const Value& v) -> const std::string& {
            if (!v.is_string()) qwen3::detail::fail(ErrorCode::invalid_argument, "str.", name, "() needs a str argument, not ", type_name(v));
            return v.str_bytes();
        };
        if (name == "startswith" || name == "endswith") {
            const bool start = name == "startswith";
            return fn([self, start, need_str](std::vector<Value>& args, auto&) {
                if (args.empty()) qwen3::detail::fail(ErrorCode::invalid_argument, "takes at least 1 argument");
                std::vector<std::string> options;
                if (args[0].is_list())
                    for (const Value& v : args[0].items()) options.push_back(need_str(v));
                else
                    options.push_back(need_str(args[0]));
                const std::string& s = self.str_bytes();
                for (const std::string& o : options)
                    if (o.size() <= s.size() && (start ? s.compare(0, o.size(), o) == 0 : s.compare(s.size() - o.size(), o.size(), o) == 0))
                        return Value::boolean(true);
                return Value::boolean(false);
            });
        }
        if (name == "strip" || name == "lstrip" || name == "rstrip") {
            const bool left = name != "rstrip", right = name != "lstrip";
            return fn([self, left, right](std::vector<Value>& args, auto&) {
                const Value chars = args.empty() ? Value::none() : args[0];
                if (!chars.is_none() && !chars.is_string()) qwen3::detail::fail(ErrorCode::invalid_argument, "the argument must be str or None");
                return Value::string(strip(self.text(), chars, left, right));
            });
        }
        if (name == "split" || name == "rsplit") {
            const bool from_right = name == "rsplit";
            return fn([self, from_right, need_str](std::vector<Value>& args, auto& named) {
                Args a{args, named};
                const Value sep = arg(a, 0, "sep", Value::none());
                const Value max = arg(a, 1, "maxsplit", Value::integer(-1));
                std::int64_t limit = as_int(max, 0, "maxsplit");
                const Text& t = self.text();
                const std::string& s = t.bytes;
                std::vector<std::pair<std::size_t, std::size_t>> pieces;
                if (sep.is_none()) {  // runs of whitespace; the rest after maxsplit keeps its outer side
                    const auto at = code_point_offsets(s);
                    const std::size_t n = at.size() - 1;
                    auto space = [&](std::size_t k) {
                        std::size_t len = 0;
                        return is_space(decode_at(s, at[k], &len));
                    };
                    if (!from_right) {
                        for (std::size_t k = 0;;) {
                            while (k < n && space(k)) ++k;
                            if (k >= n) break;
                            if (limit >= 0 && std::int64_t(pieces.size()) == limit) {
                                pieces.emplace_back(at[k], s.size());
                                break;
                            }
                            std::size_t j = k;
                            while (j < n && !space(j)) ++j;
                            pieces.emplace_back(at[k], at[j]);
                            k = j;
                        }
                    } else {
                        std::vector<std::pair<std::size_t, std::size_t>> reversed;
                        for (std::size_t k = n;;) {
                            while (k > 0 && space(k - 1)) --k;
                            if (k == 0) break;
                            if (limit >= 0 && std::int64_t(reversed.size()) == limit) {
                                reversed.emplace_back(0, at[k]);
                                break;
                            }
                            std::size_t j = k;
                            while (j > 0 && !space(j - 1)) --j;
                            reversed.emplace_back(at[j], at[k]);
                            k = j;
                        }
                        pieces.assign(reversed.rbegin(), reversed.rend());
                    }
                } else {
                    const std::string& d = need_str(sep);
                    if (d.empty()) qwen3::detail::fail(ErrorCode::invalid_argument, "empty separator");
                    if (!from_right) {
                        std::size_t i = 0;
                        for (std::size_t k; (limit < 0 || std::int64_t(pieces.size()) < limit) && (k = s.find(d, i)) != std::string::npos; i = k + d.size())
                            pieces.emplace_back(i, k);
                        pieces.emplace_back(i, s.size());
                    } else {
                        std::size_t end = s.size();
                        std::vector<std::pair<std::size_t, std::size_t>> rev;
                        while (limit < 0 || std::int64_t(rev.size()) < limit) {
                            if (end < d.size()) break;
                            const std::size_t k = s.rfind(d, end - d.size());
                            if (k == std::string::npos) break;
                            rev.emplace_back(k + d.size(), end);
                            end = k;
                        }
                        rev.emplace_back(0, end);
                        pieces.assign(rev.rbegin(), rev.rend());
                    }
                }
                List out;
                for (auto [b, e] : pieces) out.push_back(Value::string(t.slice(b, e)));
                return Value::list(std::move(out));
            });
        }
        if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
            const std::string kind = name;
            return fn([self, kind](auto&, auto&) { return Value::string(change_case(self.text(), kind)); });
        }
        if (name == "replace") {
            return fn([self, need_str](std::vector<Value>& args, auto&) {
                if (args.size() < 2) qwen3::detail::fail(ErrorCode::invalid_argument, "replace expected at least 2 arguments");
                return Value::string(replace(self.text(), need_str(args[0]), args[1].is_string() ? args[1].text() : Text(),
                                             args.size() > 2 ? as_int(args[2], 0, "count") : -1));
            });
        }
        if (name == "find" || name == "count" || name == "index") {
            const std::string kind = name;
            return fn([self, kind, need_str](std::vector<Value>& args, auto&) {
                if (args.empty()) qwen3::detail::fail(ErrorCode::invalid_argument, "takes at least 1 argument");
                const std::string& needle = need_str(args[0]);
                const std::string& s = self.str_bytes();
                if (kind == "count") {
                    if (needle.empty()) return Value::integer(std::int64_t(code_point_count(s)) + 1);
                    std::int64_t n = 0;
                    for (std::size_t i = s.find(needle); i != std::string::npos; i = s.find(needle, i + needle.size())) ++n;
                    return Value::integer(n);
                }
                const std::size_t at = s.find(needle);
                if (at == std::string::npos) {
                    if (kind == "index") qwen3::detail::fail(ErrorCode::invalid_argument, "substring not found");
                    return Value::integer(-1);
                }
                return Value::integer(std::int64_t(code_point_count(std::string_view(s).substr(0, at))));
            });
        }
        if (name == "join") {
            return fn([self, line](std::vector<Value>& args, auto&) {
                if (args.empty()) qwen3::detail::fail(ErrorCode::invalid_argument, "join takes 1 argument");
                Text out;
                bool first = true;
                for (const Value& v : iterate(args[0], line)) {
                    if (!v.is_string()) qwen3::detail::fail(ErrorCode::invalid_argument, "sequence item: expected str instance, ", type_name(v), " found");
                    if (!first) out.append(self.text());
                    first = false;
                    out.append(v.text());
                }
                return Value::string(std::move(out));
            });
        }
        if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum" || name == "isupper" || name == "islower") {
            const std::string kind = name;
            return fn([self, kind](auto&, auto&) {
                const std::string& s = self.str_bytes();
                if (s.empty()) return Value::boolean(false);
                bool any_cased = false;
                for (std::size_t i = 0, n = 0; i < s.size(); i += n) {
                    const std::uint32_t c = decode_at(s, i, &n);
                    if (c >= 0x80 && kind != "isspace")
                        qwen3::detail::fail(ErrorCode::invalid_argument, "str.", kind, "() of non-ASCII text is not supported");
                    const bool ok = kind == "isdigit" ? (c >= '0' && c <= '9')
                                    : kind == "isalpha" ? std::isalpha(int(c)) != 0
                                    : kind == "isalnum" ? std::isalnum(int(c)) != 0
                                    : kind == "isspace" ? is_space(c)
                                    : kind == "isupper" ? !std::islower(int(c))
                                                        : !std::isupper(int(c));
                    if (std::isalpha(int(c & 0x7F)) && c < 0x80) any_cased = true;
                    if (!ok) return Value::boolean(false);
                }
                return Value::boolean(kind == "isupper" || kind == "islower" ? any_cased : true);
            });
        }
        if (name == "format") {
            return fn([self](std::vector<Value>& args, auto& named) { return Value::string(format(self.text(), args, named)); });
        }
        return {};
    }
    // str.format with {}, {0} and {name} fields ({{ and }} for braces); format specs and conversions
    // are refused.
    static Text format(const Text& t, const std::vector<Value>& args, const std::vector<std::pair<std::string, Value>>& named) {
        Text out;
        const std::string& s = t.bytes;
        std::size_t next_auto = 0, literal_start = 0;
        int numbering = 0;  // 1 automatic ({}), 2 manual ({0}): Python refuses a mix
        for (std::size_t i = 0; i < s.size(); ++i) {
            if ((s[i] == '{' || s[i] == '}') && i + 1 < s.size() && s[i + 1] == s[i]) {
                out.append(t.slice(literal_start, i + 1));
                literal_start = ++i + 1;
                continue;
            }
            if (s[i] == '}') qwen3::detail::fail(ErrorCode::invalid_argument, "Single '}' encountered in format string");
            if (s[i] != '{') continue;
            const std::size_t close = s.find('}', i);
            if (close == std::string::npos) qwen3::detail::fail(ErrorCode::invalid_argument, "Single '{' encountered in format string");
            out.append(t.slice(literal_start, i));
            const std::string field = s.substr(i + 1, close - i - 1);
            if (field.find_first_of(":!.[") != std::string::npos)
                qwen3::detail::fail(ErrorCode::invalid_argument, "format fields with specs or conversions are not supported: {", field, "}");
            const Value* v = nullptr;
            const bool automatic = field.empty(), manual = !field.empty() && field[0] >= '0' && field[0] <= '9';
            if ((automatic && numbering == 2) || (manual && numbering == 1))
                qwen3::detail::fail(ErrorCode::invalid_argument, "cannot switch between automatic and manual field numbering");
            if (automatic) numbering = 1;
            if (manual) numbering = 2;
            if (field.empty()) {
                if (next_auto >= args.size()) qwen3::detail::fail(ErrorCode::invalid_argument, "Replacement index ", next_auto, " out of range");
                v = &args[next_auto++];
            } else if (std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                std::int64_t parsed = 0;
                const std::size_t index = parse_int64(field, &parsed) ? std::size_t(parsed) : args.size();
                if (index >= args.size()) qwen3::detail::fail(ErrorCode::invalid_argument, "Replacement index ", index, " out of range");
                v = &args[index];
            } else {
                for (const auto& [k, x] : named)
                    if (k == field) v = &x;
                if (!v) qwen3::detail::fail(ErrorCode::invalid_argument, "no argument named '", field, "'");
            }
            out.append(str_of(*v));
            literal_start = close + 1;
            i = close;
        }
        out.append(t.slice(literal_start, s.size()));
        return out;
    }

    static Text change_case(const Text& t, const std::string& kind) {
        Text out = t;
        bool start = true;  // title: at the start of a word; capitalize: at the start of the text
        for (std::size_t i = 0; i < out.bytes.size(); ++i) {
            unsigned char& c = reinterpret_cast<unsigned char&>(out.bytes[i]);
            if (c >= 0x80) {
                // ASCII case mapping only: non-ASCII letters keep their case
                start = false;
                continue;
            }
            const bool alpha = std::isalpha(c) != 0;
            if (kind == "upper") c = static_cast<unsigned char>(std::toupper(c));
            else if (kind == "lower") c = static_cast<unsigned char>(std::tolower(c));
            else if (kind == "capitalize") c = static_cast<unsigned char>(i == 0 ? std::toupper(c) : std::tolower(c));
            else c = static_cast<unsigned char>(start ? std::toupper(c) : std::tolower(c));
            start = !alpha;
        }
        return out;
    }

    static Text replace(const Text& t, const std::string& old, const Text& with, std::int64_t count) {
        Text out;
        const std::string& s = t.bytes;
        std::size_t i = 0;
        std::int64_t done = 0;
        if (old.empty()) {  // Python inserts `with` between every character and at both ends
            const auto at = code_point_offsets(s);
            for (std::size_t k = 0; k + 1 < at.size(); ++k) {
                if (count < 0 || done < count) out.append(with), ++done;
                out.append(t.slice(at[k], at[k + 1]));
            }
            if (count < 0 || done < count) out.append(with);
            return out;
        }
        for (std::size_t k; (count < 0 || done < count) && (k = s.find(old, i)) != std::string::npos; i = k + old.size(), ++done) {
            out.append(t.slice(i, k));
            out.append(with);
        }
        out.append(t.slice(i, s.size()));
        return out;
    }

    // ---- filters and tests

    Value filter(const Expr& e) {
        const std::string& name = e.name;
        if (name == "default" || name == "d") {  // evaluated before the operand can fail
            const Value v = eval(*e.args[0]);
            Args a = arguments(e, 1);
            const bool boolean = arg(a, 1, "boolean", Value::boolean(false)).truthy();
            if (v.is_undefined() || (boolean && !v.truthy())) return arg(a, 0, "default_value", Value::string(std::string()));
            return v;
        }
        const Value v = eval(*e.args[0]);
        Args a = arguments(e, 1);
        const int line = e.line;
        if (name == "length" || name == "count") {
            switch (v.kind()) {
                case Value::Kind::string: return Value::integer(std::int64_t(code_point_count(v.str_bytes())));
                case Value::Kind::list: return Value::integer(std::int64_t(v.items().size()));
                case Value::Kind::dict:
                case Value::Kind::names: return Value::integer(std::int64_t(v.members().size()));
                case Value::Kind::undefined: return Value::integer(0);
                default: fail(line, "object of type '", type_name(v), "' has no len()");
            }
        }
        if (name == "tojson") {
            const Value indent = arg(a, 0, "indent", Value::none());
            std::string out;
            dump_json(out, v, indent.is_none() ? -1 : int(as_int(indent, line, "indent")), 0, "chat template: line " + std::to_string(line) + ": ");
            return Value::string(Text::from_data(std::move(out)));
        }
        if (name == "string") return Value::string(str_of(v));
        if (name == "trim") return Value::string(strip(need_string(v, line, name), arg(a, 0, "chars", Value::none()), true, true));
        if (name == "upper" || name == "lower" || name == "title" || name == "capitalize")
            return Value::string(change_case(need_string(v, line, name), name));
        if (name == "replace") {
            const Value old = arg(a, 0, "old"), with = arg(a, 1, "new");
            if (!old.is_string() || !with.is_string()) fail(line, "replace needs two strings");
            return Value::string(replace(need_string(v, line, name), old.str_bytes(), with.text(), as_int(arg(a, 2, "count", Value::integer(-1)), line, "count")));
        }
        if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
            if (name != "safe") fail(line, "the filter '", name, "' is not supported (templates render without HTML escaping)");
            return v;
        }
        if (name == "first" || name == "last") {
            const List items = iterate(v, line);
            if (items.empty()) return {};
            return name == "first" ? items.front() : items.back();
        }
        if (name == "list") return Value::list(iterate(v, line));
        if (name == "reverse") {
            if (v.is_string()) {
                const auto at = code_point_offsets(v.str_bytes());
                Text out;
                for (std::size_t k = at.size() - 1; k > 0; --k) out.append(v.text().slice(at[k - 1], at[k]));
                return Value::string(std::move(out));
            }
            List items = iterate(v, line);
            std::reverse(items.begin(), items.end());
            return Value::list(std::move(items));
        }
        if (name == "join") {
            const Value sep = arg(a, 0, "d", Value::string(std::string()));
            const Value attr = arg(a, 1, "attribute");
            Text out;
            bool first = true;
            for (Value item : iterate(v, line)) {
                if (!attr.is_undefined()) item = attribute(item, str_of(attr).bytes, line);
                if (!first) out.append(str_of(sep));
                first = false;
                out.append(str_of(item));
            }
            return Value::string(std::move(out));
        }
        if (name == "items") {
            if (v.is_undefined()) return Value::list({});
            if (!v.is_mapping()) fail(line, "the filter 'items' needs a mapping, not ", type_name(v));
            List out;
            for (const auto& [k, x] : v.members()) out.push_back(Value::tuple({key_value(v, k), x}));
            return Value::list(std::move(out));
        }
        if (name == "int") {
            if (v.kind() == Value::Kind::integer) return v;
            if (v.kind() == Value::Kind::floating) return Value::integer(std::int64_t(v.as_double()));
            if (v.kind() == Value::Kind::boolean) return Value::integer(v.as_bool());
            if (v.is_string()) {
                std::int64_t n = 0;
                if (parse_int64(strip(v.text(), Value::none(), true, true).bytes, &n)) return Value::integer(n);
            }
            return arg(a, 0, "default", Value::integer(0));
        }
        if (name == "float") {
            if (v.is_number()) return Value::floating(v.as_double());
            if (v.is_string()) {
                const std::string s = strip(v.text(), Value::none(), true, true).bytes;
                char* end = nullptr;
                const double d = s.empty() ? 0 : std::strtod(s.c_str(), &end);
                if (!s.empty() && end == s.c_str() + s.size()) return Value::floating(d);
            }
            return arg(a, 0, "default", Value::floating(0));
        }
        if (name == "abs") {
            if (v.kind() == Value::Kind::integer) return Value::integer(std::abs(as_int(v, line, "abs()'s argument")));
            if (v.kind() == Value::Kind::floating) return Value::floating(std::fabs(v.as_double()));
            fail(line, "bad operand type for abs(): '", type_name(v), "'");
        }
        if (name == "map") {
            List out;
            const Value attr = arg(a, 99, "attribute");
            for (const Value& item : iterate(v, line)) {
                if (!attr.is_undefined()) {
                    Value x = attribute_path(item, str_of(attr).bytes, line);
                    if (x.is_undefined()) x = arg(a, 99, "default");
                    out.push_back(x);
                } else {
                    if (a.positional.empty()) fail(line, "map needs a filter name or attribute=");
                    out.push_back(apply_filter(str_of(a.positional[0]).bytes, item, {a.positional.begin() + 1, a.positional.end()}, line));
                }
            }
            return Value::list(std::move(out));
        }
        if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
            const bool by_attr = name == "selectattr" || name == "rejectattr", keep_true = name == "select" || name == "selectattr";
            std::size_t first = by_attr ? 1 : 0;
            List out;
            for (const Value& item : iterate(v, line)) {
                const Value subject = by_attr ? attribute_path(item, str_of(arg(a, 0, "attribute")).bytes, line) : item;
                bool r;
                if (a.positional.size() > first) {
                    std::vector<Value> rest(a.positional.begin() + std::ptrdiff_t(first) + 1, a.positional.end());
                    r = apply_test(str_of(a.positional[first]).bytes, subject, rest, line);
                } else {
                    r = subject.truthy();
                }
                if (r == keep_true) out.push_back(item);
            }
            return Value::list(std::move(out));
        }
        if (name == "unique") {
            List out;
            for (const Value& item : iterate(v, line))
                if (std::none_of(out.begin(), out.end(), [&](const Value& x) { return equal(x, item); })) out.push_back(item);
            return Value::list(std::move(out));
        }
        if (name == "sum") {
            Value total = arg(a, 1, "start", Value::integer(0));
            const Value attr = arg(a, 0, "attribute");
            for (Value item : iterate(v, line)) {
                if (!attr.is_undefined()) item = attribute_path(item, str_of(attr).bytes, line);
                if (!item.is_number() || !total.is_number() || item.is_big()) fail(line, "sum of non-numbers or of integers past 64 bits");
                total = total.kind() == Value::Kind::integer && item.kind() == Value::Kind::integer
                            ? Value::integer(total.as_integer() + item.as_integer())
                            : Value::floating(total.as_double() + item.as_double());
            }
            return total;
        }
        if (name == "dictsort") {
            if (!v.is_mapping()) fail(line, "dictsort needs a mapping");
            List out;
            for (const auto& [k, x] : v.members()) out.push_back(Value::tuple({key_value(v, k), x}));
            std::stable_sort(out.begin(), out.end(), [&](const Value& p, const Value& q) {
                return compare(p.items()[0], q.items()[0], line, "<") < 0;
            });
            return Value::list(std::move(out));
        }
        if (name == "sort") {
            List items = iterate(v, line);
            const bool reverse = arg(a, 0, "reverse", Value::boolean(false)).truthy();
            const Value attr = arg(a, 2, "attribute");
            auto key = [&](const Value& x) { return attr.is_undefined() ? x : attribute_path(x, str_of(attr).bytes, line); };
            std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
                const int c = compare(key(p), key(q), line, "<");
                return reverse ? c > 0 : c < 0;
            });
            return Value::list(std::move(items));
        }
        if (name == "wordcount") return Value::integer(std::int64_t(iterate_words(v, line)));
        fail(line, "the filter '", name, "' is not supported");
    }
    std::size_t iterate_words(const Value& v, int line) {
        const Value words = string_method(Value::string(need_string(v, line, "wordcount")), "split", line);
        std::vector<Value> none;
        std::vector<std::pair<std::string, Value>> named;
        return words.as_function()(none, named).items().size();
    }
    Value apply_filter(const std::string& name, const Value& v, std::vector<Value> args, int line) {
        auto e = new_expr(Expr::Kind::filter);
        e->line = line;
        e->name = name;
        auto lit = [&](const Value& x) {
            auto l = new_expr(Expr::Kind::literal);
            l->line = line;
            l->value = x;
            return ExprPtr(l);
        };
        e->args.push_back(lit(v));
        for (const Value& x : args) e->args.push_back(lit(x));
        return filter(*e);
    }
    bool apply_test(const std::string& name, const Value& v, const std::vector<Value>& args, int line) {
        return test_value(name, v, args, line);
    }
    // "a.b" follows attributes and integer indexes, as Jinja's attribute= arguments do
    Value attribute_path(const Value& v, const std::string& path, int line) {
        Value x = v;
        std::size_t i = 0;
        while (i <= path.size()) {
            const std::size_t dot = path.find('.', i);
            const std::string part = path.substr(i, dot == std::string::npos ? std::string::npos : dot - i);
            if (x.is_undefined()) return x;
            const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
            std::int64_t index = 0;
            x = digits && parse_int64(part, &index) ? item(x, Value::integer(index), line) : item(x, Value::string(part), line);
            if (dot == std::string::npos) break;
            i = dot + 1;
        }
        return x;
    }
    static const Text& need_string(const Value& v, int line, std::string_view filter) {
        if (!v.is_string()) fail(line, "the filter '", filter, "' needs a string, not ", type_name(v));
        return v.text();
    }

    bool test(const Expr& e) {
        const Value v = eval(*e.args[0]);
        std::vector<Value> args;
        for (std::size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
        return test_value(e.name, v, args, e.line);
    }
    bool test_value(const std::string& name, const Value& v, const std::vector<Value>& args, int line) {
        using K = Value::Kind;
        auto other = [&]() -> const Value& {
            if (args.empty()) fail(line, "the test '", name, "' needs an argument");
            return args[0];
        };
        if (name == "defined") return !v.is_undefined();
        if (name == "undefined") return v.is_undefined();
        if (name == "none") return v.is_none();
        if (name == "boolean") return v.kind() == K::boolean;
        if (name == "true") return v.kind() == K::boolean && v.as_bool();
        if (name == "false") return v.kind() == K::boolean && !v.as_bool();
        if (name == "string") return v.is_string();
        if (name == "number") return v.is_number() || v.kind() == K::boolean;
        if (name == "integer") return v.kind() == K::integer;
        if (name == "float") return v.kind() == K::floating;
        // as Jinja's tests: Undefined has a length and can be iterated; a namespace() is no mapping
        if (name == "mapping") return v.is_dict();
        if (name == "sequence") return v.is_list() || v.is_string() || v.is_dict() || v.is_undefined();
        if (name == "iterable") return v.is_list() || v.is_string() || v.is_mapping() || v.is_undefined();
        if (name == "callable") return v.kind() == K::function || v.kind() == K::macro;
        if (name == "odd" || name == "even") {
            const std::int64_t n = as_int(v, line, "the tested value");
            return (n % 2 != 0) == (name == "odd");
        }
        if (name == "divisibleby") {
            const std::int64_t d = as_int(other(), line, "divisibleby's argument");
            if (d == 0) fail(line, "divisibleby 0");
            return as_int(v, line, "the tested value") % d == 0;
        }
        if (name == "eq" || name == "equalto" || name == "==") return equal(v, other());
        if (name == "ne" || name == "!=") return !equal(v, other());
        if (name == "lt" || name == "<" || name == "lessthan") return compare(v, other(), line, "<") < 0;
        if (name == "le" || name == "<=") return compare(v, other(), line, "<=") <= 0;
        if (name == "gt" || name == ">" || name == "greaterthan") return compare(v, other(), line, ">") > 0;
        if (name == "ge" || name == ">=") return compare(v, other(), line, ">=") >= 0;
        if (name == "in") return contains(other(), v, line);
        if (name == "lower") return v.is_string() && change_case(v.text(), "lower").bytes == v.str_bytes();
        if (name == "upper") return v.is_string() && change_case(v.text(), "upper").bytes == v.str_bytes();
        if (name == "sameas") {
            const Value& o = other();
            return v.kind() == o.kind() && (v.kind() == K::none || v.kind() == K::undefined || (v.kind() == K::boolean && v.as_bool() == o.as_bool()));
        }
        fail(line, "the test '", name, "' is not supported");
    }

    RenderLimits limits_;
    std::vector<Dict> scopes_;  // the globals first, the innermost last
    std::uint64_t steps_ = 0;
    int depth_ = 0;
};

}  // namespace detail

// Runs `program` with `variables` as its globals. Throws Error(invalid_argument) for what a
// template raises (raise_exception, a Python error, an unsupported filter), naming its line.
inline Text render(const Program& program, Dict variables, const RenderLimits& limits = {}) {
    return detail::Interpreter(std::move(variables), limits).run(program);
}

}  // namespace qwen3::chat::jinja
