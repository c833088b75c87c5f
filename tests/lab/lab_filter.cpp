// The strict $filter parser/evaluator of the lab's Graph endpoints and the query-string
// handling around it. Graph rejects what it does not support with 400
// Request_UnsupportedQuery rather than guessing, and so does the lab: a daemon that builds a
// filter the real service would refuse must fail here too, not in production.
#include "lab/lab_internal.hpp"

#include <cctype>
#include <set>

namespace glasswatch::lab::detail {

// ---- encoding ---------------------------------------------------------------------------------

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string url_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+' && plus_is_space) {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
                   hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string graph_query_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '(' ||
            c == ')' || c == '/') {
            out += static_cast<char>(c);
        } else if (c == ' ') {
            out += '+';
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

param_list parse_params(std::string_view s) {
    param_list out;
    while (!s.empty()) {
        std::size_t amp = s.find('&');
        std::string_view part = s.substr(0, amp);
        s = amp == std::string_view::npos ? std::string_view{} : s.substr(amp + 1);
        if (part.empty()) continue;
        std::size_t eq = part.find('=');
        std::string_view name = part.substr(0, eq);
        std::string_view value =
            eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
        out.emplace_back(url_decode(name, true), url_decode(value, true));
    }
    return out;
}

std::string header_of(const test::server_request& req, std::string_view name) {
    for (const auto& [k, v] : req.headers)
        if (iequals(k, name)) return v;
    return {};
}

std::string path_of(const test::server_request& req) {
    return req.target.substr(0, req.target.find('?'));
}

std::string query_of(const test::server_request& req) {
    std::size_t q = req.target.find('?');
    return q == std::string::npos ? std::string{} : req.target.substr(q + 1);
}

// ---- $filter ----------------------------------------------------------------------------------

namespace {

constexpr const char* known_event_types[] = {"interactiveUser", "nonInteractiveUser",
                                             "servicePrincipal", "managedIdentity",
                                             "unknownFutureValue"};

// Recursive-descent over the exact shapes Graph documents for these endpoints (graph.md §1.4,
// §2.1, §2.3). Keywords are lower-case; property names compare case-insensitively.
class filter_parser {
public:
    filter_parser(std::string_view text, log_kind kind, std::string& why)
        : s_(text), kind_(kind), why_(why) {}

    std::optional<parsed_filter> run() {
        parsed_filter out;
        skip_ws();
        if (at_end()) return fail("empty $filter");
        for (;;) {
            auto clause = parse_clause(out);
            if (!clause) return std::nullopt;
            out.clauses.push_back(std::move(*clause));
            std::size_t before = pos_;
            skip_ws();
            if (at_end()) break;
            if (pos_ == before || !word("and") || !space1())
                return fail("expected ' and ' at position " + std::to_string(before));
        }
        return out;
    }

private:
    std::nullopt_t fail(std::string why) {
        if (why_.empty()) why_ = std::move(why);
        return std::nullopt;
    }
    bool at_end() const { return pos_ >= s_.size(); }
    char peek() const { return at_end() ? '\0' : s_[pos_]; }
    void skip_ws() {
        while (!at_end() && s_[pos_] == ' ')
            ++pos_;
    }
    bool space1() {
        if (peek() != ' ') return false;
        skip_ws();
        return true;
    }
    bool lit(char c) {
        if (peek() != c) return false;
        ++pos_;
        return true;
    }
    // A keyword followed by a space (or the end): "eq", "and", "or", "ge", "le".
    bool word(std::string_view w) {
        if (s_.substr(pos_, w.size()) != w) return false;
        std::size_t after = pos_ + w.size();
        if (after < s_.size() && s_[after] != ' ') return false;
        pos_ = after;
        return true;
    }
    // A property path: letters, digits, '_' and '/'.
    std::string path() {
        std::size_t start = pos_;
        while (!at_end() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) ||
                             s_[pos_] == '_' || s_[pos_] == '/'))
            ++pos_;
        return std::string(s_.substr(start, pos_ - start));
    }
    std::optional<std::string> quoted() {
        if (!lit('\'')) return fail("expected a quoted string at position " + std::to_string(pos_));
        std::string out;
        for (;;) {
            if (at_end()) return fail("unterminated string literal");
            char c = s_[pos_++];
            if (c == '\'') {
                if (peek() == '\'') {
                    out += '\'';
                    ++pos_;
                    continue;
                }
                return out;
            }
            out += c;
        }
    }
    // " eq '<value>'" after a property.
    std::optional<std::string> eq_string(const std::string& prop) {
        if (!space1() || !word("eq") || !space1()) return fail("only 'eq' is supported on " + prop);
        return quoted();
    }

    std::optional<filter_clause> parse_clause(parsed_filter& out) {
        if (lit('(')) {
            skip_ws();
            filter_clause group;
            for (;;) {
                auto atom = parse_atom(out, true);
                if (!atom) return std::nullopt;
                group.push_back(std::move(*atom));
                std::size_t before = pos_;
                skip_ws();
                if (lit(')')) return group;
                if (pos_ == before || !word("or") || !space1())
                    return fail("expected ' or ' or ')' at position " + std::to_string(before));
            }
        }
        auto atom = parse_atom(out, false);
        if (!atom) return std::nullopt;
        if (atom->kind == filter_atom::what::event_type) {
            // The lambda yields several atoms (one per type); parse_atom stashed the rest.
            filter_clause c = std::move(pending_);
            pending_.clear();
            return c;
        }
        return filter_clause{std::move(*atom)};
    }

    std::optional<filter_atom> parse_atom(parsed_filter& out, bool in_group) {
        std::size_t start = pos_;
        std::string prop = path();
        if (prop.empty())
            return fail("unexpected '" + std::string(1, peek()) + "' at position " +
                        std::to_string(start));
        const bool signins = kind_ == log_kind::sign_ins;
        const char* time_prop = signins ? "createdDateTime" : "activityDateTime";
        if (iequals(prop, time_prop)) {
            if (in_group) return fail("a date comparison cannot be part of an 'or' group");
            if (!space1()) return fail("expected an operator after " + prop);
            filter_atom a{filter_atom::what::time_ge, 0, {}};
            if (word("ge"))
                a.kind = filter_atom::what::time_ge;
            else if (word("le"))
                a.kind = filter_atom::what::time_le;
            else
                return fail("operator not supported on " + prop + " (use ge or le)");
            if (!space1()) return fail("expected a date after the operator");
            std::size_t lit_start = pos_;
            while (!at_end() && s_[pos_] != ' ' && s_[pos_] != ')')
                ++pos_;
            std::string_view value = s_.substr(lit_start, pos_ - lit_start);
            auto t = parse_iso(value);
            if (!t) return fail("invalid DateTimeOffset literal '" + std::string(value) + "'");
            a.time_us = *t;
            return a;
        }
        if (signins && iequals(prop, "userId")) {
            auto v = eq_string(prop);
            if (!v) return std::nullopt;
            return filter_atom{filter_atom::what::user_id, 0, *v};
        }
        if (signins && iequals(prop, "servicePrincipalId")) {
            auto v = eq_string(prop);
            if (!v) return std::nullopt;
            return filter_atom{filter_atom::what::sp_id, 0, *v};
        }
        if (signins && iequals(prop, "signInEventTypes/any")) {
            if (in_group) return fail("signInEventTypes/any() cannot be part of an 'or' group");
            out.uses_event_types = true;
            return parse_event_types();
        }
        if (!signins && iequals(prop, "initiatedBy/user/id")) {
            auto v = eq_string(prop);
            if (!v) return std::nullopt;
            return filter_atom{filter_atom::what::initiator_id, 0, *v};
        }
        if (!signins && iequals(prop, "targetResources/any")) {
            if (!lit('(')) return fail("expected '(' after targetResources/any");
            std::string var = path();
            if (var.empty() || var.find('/') != std::string::npos || !lit(':'))
                return fail("expected a lambda variable in targetResources/any()");
            skip_ws();
            std::string member = path();
            if (!iequals(member, var + "/id"))
                return fail("only " + var + "/id eq '...' is supported in targetResources/any()");
            auto v = eq_string(member);
            if (!v) return std::nullopt;
            skip_ws();
            if (!lit(')')) return fail("expected ')' to close targetResources/any()");
            return filter_atom{filter_atom::what::target_id, 0, *v};
        }
        return fail("property '" + prop + "' is not supported in $filter on this resource");
    }

    std::optional<filter_atom> parse_event_types() {
        if (!lit('(')) return fail("expected '(' after signInEventTypes/any");
        std::string var = path();
        if (var.empty() || var.find('/') != std::string::npos || !lit(':'))
            return fail("expected a lambda variable in signInEventTypes/any()");
        skip_ws();
        pending_.clear();
        for (;;) {
            std::string member = path();
            if (member != var)
                return fail("expected '" + var + " eq ...' in signInEventTypes/any()");
            auto v = eq_string(member);
            if (!v) return std::nullopt;
            bool known = false;
            for (const char* t : known_event_types)
                known = known || *v == t;
            if (!known) return fail("'" + *v + "' is not a member of signInEventType");
            pending_.push_back({filter_atom::what::event_type, 0, *v});
            std::size_t before = pos_;
            skip_ws();
            if (lit(')')) break;
            if (pos_ == before || !word("or") || !space1())
                return fail("expected ' or ' or ')' in signInEventTypes/any()");
        }
        return pending_.front();
    }

    std::string_view s_;
    log_kind kind_;
    std::string& why_;
    std::size_t pos_ = 0;
    filter_clause pending_;
};

}  // namespace

std::optional<parsed_filter> parse_filter(std::string_view text, log_kind kind, std::string& why) {
    why.clear();
    return filter_parser(text, kind, why).run();
}

bool filter_matches(const parsed_filter& f, const filter_view& v) {
    for (const auto& clause : f.clauses) {
        bool any = false;
        for (const auto& a : clause) {
            switch (a.kind) {
                case filter_atom::what::time_ge:
                    any = v.created_us >= a.time_us;
                    break;
                case filter_atom::what::time_le:
                    any = v.created_us <= a.time_us;
                    break;
                case filter_atom::what::user_id:
                    any = iequals(v.user_id, a.value);
                    break;
                case filter_atom::what::sp_id:
                    any = !v.sp_id.empty() && iequals(v.sp_id, a.value);
                    break;
                case filter_atom::what::event_type:
                    any = v.event_type == a.value;
                    break;
                case filter_atom::what::initiator_id:
                    any = iequals(v.initiator_id, a.value);
                    break;
                case filter_atom::what::target_id:
                    for (const auto& t : v.target_ids)
                        any = any || iequals(t, a.value);
                    break;
            }
            if (any) break;
        }
        if (!any) return false;
    }
    return true;
}

// ---- query options ----------------------------------------------------------------------------

std::optional<list_query> parse_list_query(std::string_view raw_query, log_kind kind,
                                           std::string& code, std::string& why) {
    list_query q;
    std::set<std::string> seen;
    for (auto& [raw_name, value] : parse_params(raw_query)) {
        std::string name = lower(raw_name);
        // Graph ignores custom (non-$) parameters, but refuses a system option given twice.
        if (name.empty() || name[0] != '$') continue;
        if (!seen.insert(name).second) {
            code = "Request_BadRequest";
            why = "Query option '" + raw_name + "' was specified more than once.";
            return std::nullopt;
        }
        if (name == "$filter") {
            q.filter_text = value;
            std::string reason;
            q.filter = parse_filter(value, kind, reason);
            if (!q.filter) {
                code = "Request_UnsupportedQuery";
                why = "Unsupported or invalid query filter clause specified: " + reason + ".";
                return std::nullopt;
            }
        } else if (name == "$top") {
            bool digits = !value.empty() && value.size() <= 7;
            for (char c : value)
                digits = digits && c >= '0' && c <= '9';
            int top = digits ? std::stoi(value) : 0;
            if (!digits || top < 1 || top > 1000) {
                code = "Request_BadRequest";
                why = "Invalid page size specified: '" + value +
                      "'. Must be between 1 and 1000 inclusive.";
                return std::nullopt;
            }
            q.top = top;
            q.top_given = true;
        } else if (name == "$orderby") {
            const std::string prop =
                kind == log_kind::sign_ins ? "createdDateTime" : "activityDateTime";
            std::string v = value;
            bool ok = false;
            if (iequals(v, prop) || iequals(v, prop + " asc")) {
                ok = true;
                q.ascending = true;
            } else if (iequals(v, prop + " desc")) {
                ok = true;
                q.ascending = false;
            }
            if (!ok) {
                code = "Request_UnsupportedQuery";
                why = "Unsupported $orderby '" + value + "'; only " + prop +
                      " asc|desc is supported.";
                return std::nullopt;
            }
            q.orderby_text = value;
        } else if (name == "$skiptoken") {
            if (value.empty()) {
                code = "Request_BadRequest";
                why = "Invalid $skiptoken.";
                return std::nullopt;
            }
            q.skiptoken = value;
        } else if (name == "$select") {
            // Accepted and ignored: the lab always returns every property.
        } else {
            code = "Request_UnsupportedQuery";
            why = "Query option '" + raw_name + "' is not supported on this resource.";
            return std::nullopt;
        }
    }
    return q;
}

}  // namespace glasswatch::lab::detail
