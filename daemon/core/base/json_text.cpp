#include "core/base/json_text.hpp"

namespace glasswatch::core {

std::string to_lower_ascii(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

bool is_guid(std::string_view s) noexcept {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < 36; ++i) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

std::string url_encode(std::string_view v) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : v) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string form_encode(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == ' ')
            out += '+';
        else
            out += url_encode(std::string_view(&c, 1));
    }
    return out;
}

namespace {

// Decodes one UTF-8 sequence at s[i]; returns its length, or 0 when invalid.
std::size_t utf8_decode(std::string_view s, std::size_t i, char32_t& cp) noexcept {
    auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
        cp = b0;
        return 1;
    }
    std::size_t n = 0;
    char32_t min = 0;
    if ((b0 & 0xE0) == 0xC0)
        n = 2, cp = b0 & 0x1F, min = 0x80;
    else if ((b0 & 0xF0) == 0xE0)
        n = 3, cp = b0 & 0x0F, min = 0x800;
    else if ((b0 & 0xF8) == 0xF0)
        n = 4, cp = b0 & 0x07, min = 0x10000;
    else
        return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

bool is_dangerous(char32_t cp) noexcept {
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E ||
           cp == 0x200F || cp == 0xFEFF;
}

}  // namespace

std::string sanitize_line(std::string_view s, std::size_t max_bytes) {
    std::string out;
    out.reserve(s.size());
    std::size_t last_fit = 0;  // size of `out` at the last piece boundary within budget
    const std::size_t budget = max_bytes >= 3 ? max_bytes - 3 : 0;
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp = 0;
        std::size_t n = utf8_decode(s, i, cp);
        if (n == 0 || is_dangerous(cp))
            out += '?';
        else
            out.append(s.substr(i, n));
        i += n == 0 ? 1 : n;
        if (out.size() <= budget) last_fit = out.size();
        if (out.size() > max_bytes) break;  // no need to look further
    }
    if (out.size() <= max_bytes) return out;
    out.resize(last_fit);
    out += "...";
    return out;
}

std::string to_gsm7(std::string_view s, std::size_t max_chars) {
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp = 0;
        std::size_t n = utf8_decode(s, i, cp);
        i += n == 0 ? 1 : n;
        char c = '?';
        if (n != 0 && cp >= 0x20 && cp < 0x7F) {
            c = static_cast<char>(cp);
            switch (c) {  // GSM-7 extension characters cost two septets: substitute.
                case '[':
                case '{':
                    c = '(';
                    break;
                case ']':
                case '}':
                    c = ')';
                    break;
                case '\\':
                case '|':
                    c = '/';
                    break;
                case '^':
                case '`':
                    c = '\'';
                    break;
                case '~':
                    c = '-';
                    break;
                default:
                    break;
            }
        } else if (n != 0 && (cp == '\n' || cp == '\t' || cp == '\r')) {
            c = ' ';
        }
        if (out.size() >= max_chars) {
            if (max_chars >= 2) out.replace(max_chars - 2, 2, "..");
            return out;
        }
        out += c;
    }
    return out;
}

}  // namespace glasswatch::core
