#include "core/detection/replay_splitter.hpp"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

namespace glasswatch::core {

namespace {

bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), is_ws);
}

std::string_view chomp(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

}  // namespace

void replay_splitter::feed(std::string_view chunk, const emit_fn& emit) {
    switch (mode_) {
        case mode::detect:
            buf_.append(chunk);
            detect(emit, false);
            break;
        case mode::ndjson:
            feed_ndjson(chunk, emit);
            break;
        case mode::single:
            feed_single(chunk, emit);
            break;
    }
}

void replay_splitter::finish(const emit_fn& emit) {
    if (mode_ == mode::detect) detect(emit, true);
    if (mode_ == mode::detect) {  // nothing but blanks, or one line without a newline
        mode_ = mode::single;
        std::string all = std::move(buf_);
        buf_.clear();
        feed_single(all, emit);
    }
    if (cutting_) {
        end_cut(emit);
    } else if (!blank(buf_)) {
        emit(mode_ == mode::ndjson ? chomp(buf_) : std::string_view(buf_));
    }
    buf_.clear();
}

void replay_splitter::detect(const emit_fn& emit, bool at_end) {
    // The first non-blank line decides: a complete JSON value on it means NDJSON.
    std::size_t pos = 0;
    for (;;) {
        const std::size_t nl = buf_.find('\n', pos);
        if (nl == std::string::npos) break;
        const std::string_view line = chomp(std::string_view(buf_).substr(pos, nl - pos));
        if (blank(line)) {
            pos = nl + 1;
            continue;
        }
        mode_ = nlohmann::json::accept(line) ? mode::ndjson : mode::single;
        std::string data = std::move(buf_);
        buf_.clear();
        if (mode_ == mode::ndjson)
            feed_ndjson(data, emit);
        else
            feed_single(data, emit);
        return;
    }
    // No complete first line yet. Beyond max_document it is one (huge) document either way.
    if (buf_.size() > lim_.max_document || at_end) {
        mode_ = mode::single;
        std::string data = std::move(buf_);
        buf_.clear();
        feed_single(data, emit);
    }
}

void replay_splitter::feed_ndjson(std::string_view chunk, const emit_fn& emit) {
    std::size_t p = 0;
    auto line_out = [&](std::string_view line) {
        line = chomp(line);
        if (!blank(line)) emit(line);
    };
    if (cutting_) {
        const std::size_t nl = chunk.find('\n');
        if (nl == std::string_view::npos) {
            cut(chunk, emit);
            return;
        }
        cut(chunk.substr(0, nl), emit);
        end_cut(emit);
        p = nl + 1;
    } else if (!buf_.empty()) {
        const std::size_t nl = chunk.find('\n');
        if (nl == std::string_view::npos) {
            buf_.append(chunk);
            if (buf_.size() > lim_.max_document) start_cut(emit);
            return;
        }
        buf_.append(chunk.substr(0, nl));
        if (buf_.size() > lim_.max_document) {
            start_cut(emit);
            end_cut(emit);
        } else {
            line_out(buf_);
        }
        buf_.clear();
        p = nl + 1;
    }
    while (p < chunk.size()) {
        const void* hit = std::memchr(chunk.data() + p, '\n', chunk.size() - p);
        if (hit == nullptr) {
            buf_.assign(chunk.substr(p));
            if (buf_.size() > lim_.max_document) start_cut(emit);
            return;
        }
        const std::size_t nl =
            static_cast<std::size_t>(static_cast<const char*>(hit) - chunk.data());
        const std::string_view line = chunk.substr(p, nl - p);
        if (line.size() > lim_.max_document) {
            buf_.assign(line);
            start_cut(emit);
            end_cut(emit);
        } else {
            line_out(line);
        }
        p = nl + 1;
    }
}

void replay_splitter::feed_single(std::string_view chunk, const emit_fn& emit) {
    if (cutting_) {
        cut(chunk, emit);
        return;
    }
    buf_.append(chunk);
    if (buf_.size() > lim_.max_document) start_cut(emit);
}

void replay_splitter::start_cut(const emit_fn& emit) {
    cutting_ = true;
    ++cut_;
    st_ = cut_state::root;
    in_string_ = escape_ = element_too_large_ = false;
    depth_ = 0;
    key_.clear();
    array_key_.clear();
    element_.clear();
    batch_.clear();
    raw_piece_.clear();
    std::string data = std::move(buf_);
    buf_.clear();
    cut(data, emit);
}

void replay_splitter::flush_batch(const emit_fn& emit) {
    if (batch_.empty()) return;
    std::string doc;
    doc.reserve(batch_.size() + array_key_.size() + 8);
    doc += "{\"";
    doc += array_key_;
    doc += "\":[";
    doc += batch_;
    doc += "]}";
    batch_.clear();
    emit(doc);
}

void replay_splitter::go_raw(std::string_view rest, const emit_fn& emit) {
    if (st_ != cut_state::raw) {
        // Whatever was read whole goes out as a proper page; the rest as it is.
        flush_batch(emit);
        st_ = cut_state::raw;
        raw_piece_ = std::move(element_);
        element_.clear();
    }
    std::size_t p = 0;
    while (p < rest.size()) {
        const std::size_t room =
            lim_.batch_bytes > raw_piece_.size() ? lim_.batch_bytes - raw_piece_.size() : 0;
        const std::size_t n = std::min(room, rest.size() - p);
        raw_piece_.append(rest.substr(p, n));
        p += n;
        if (raw_piece_.size() >= lim_.batch_bytes) {
            ++raw_;
            emit(raw_piece_);
            raw_piece_.clear();
        }
    }
}

void replay_splitter::end_cut(const emit_fn& emit) {
    if (st_ == cut_state::done) {
        flush_batch(emit);
    } else if (st_ == cut_state::raw) {
        if (!raw_piece_.empty()) {
            ++raw_;
            emit(raw_piece_);
        }
    } else {
        // The document ended before its closing brace: what was read whole is a page, the
        // element cut off is a malformed piece.
        flush_batch(emit);
        if (!element_.empty()) {
            ++raw_;
            emit(element_);
        }
    }
    raw_piece_.clear();
    element_.clear();
    batch_.clear();
    cutting_ = false;
}

void replay_splitter::cut(std::string_view b, const emit_fn& emit) {
    std::size_t i = 0;
    const std::size_t n = b.size();
    auto finish_element = [&]() {
        if (element_too_large_) {
            ++too_large_;
        } else {
            if (!batch_.empty()) batch_ += ',';
            batch_ += element_;
            if (batch_.size() >= lim_.batch_bytes) flush_batch(emit);
        }
        element_.clear();
        element_too_large_ = false;
        st_ = cut_state::array;
    };
    while (i < n) {
        const char c = b[i];
        switch (st_) {
            case cut_state::root:
                if (is_ws(c)) {
                    ++i;
                } else if (c == '{') {
                    st_ = cut_state::key_expect;
                    ++i;
                } else {
                    go_raw(b.substr(i), emit);
                    return;
                }
                break;
            case cut_state::key_expect:
                if (is_ws(c) || c == ',') {
                    ++i;
                } else if (c == '"') {
                    key_.clear();
                    escape_ = false;
                    st_ = cut_state::key;
                    ++i;
                } else if (c == '}') {
                    st_ = cut_state::done;
                    ++i;
                } else {
                    go_raw(b.substr(i), emit);
                    return;
                }
                break;
            case cut_state::key:
                if (escape_) {
                    escape_ = false;
                    key_ += c;
                } else if (c == '\\') {
                    escape_ = true;
                    key_ += c;
                } else if (c == '"') {
                    st_ = cut_state::colon;
                } else {
                    key_ += c;
                }
                ++i;
                break;
            case cut_state::colon:
                if (is_ws(c)) {
                    ++i;
                } else if (c == ':') {
                    st_ = cut_state::value_start;
                    ++i;
                } else {
                    go_raw(b.substr(i), emit);
                    return;
                }
                break;
            case cut_state::value_start:
                if (is_ws(c)) {
                    ++i;
                } else if (c == '[' && (key_ == "value" || key_ == "records")) {
                    if (array_key_ != key_) flush_batch(emit);
                    array_key_ = key_;
                    st_ = cut_state::array;
                    ++i;
                } else {
                    depth_ = 0;
                    in_string_ = escape_ = false;
                    st_ = cut_state::value_skip;  // c is read there
                }
                break;
            case cut_state::value_skip:
                ++i;
                if (in_string_) {
                    if (escape_)
                        escape_ = false;
                    else if (c == '\\')
                        escape_ = true;
                    else if (c == '"') {
                        in_string_ = false;
                        if (depth_ == 0) st_ = cut_state::key_expect;
                    }
                } else if (c == '"') {
                    in_string_ = true;
                } else if (c == '{' || c == '[') {
                    ++depth_;
                } else if (c == '}' || c == ']') {
                    if (depth_ == 0) {
                        st_ = c == '}' ? cut_state::done : cut_state::key_expect;
                    } else if (--depth_ == 0) {
                        st_ = cut_state::key_expect;
                    }
                } else if (c == ',' && depth_ == 0) {
                    st_ = cut_state::key_expect;
                }
                break;
            case cut_state::array:
                if (is_ws(c) || c == ',') {
                    ++i;
                } else if (c == ']') {
                    st_ = cut_state::key_expect;
                    ++i;
                } else {
                    element_.clear();
                    element_too_large_ = false;
                    depth_ = 0;
                    in_string_ = escape_ = false;
                    st_ = cut_state::element;  // c is read there
                }
                break;
            case cut_state::element: {
                // Runs of ordinary bytes are appended at once: this is the hot loop.
                std::size_t j = i;
                if (in_string_) {
                    if (escape_) {
                        escape_ = false;
                        ++j;
                    }
                    while (j < n && b[j] != '"' && b[j] != '\\')
                        ++j;
                } else {
                    while (j < n && b[j] != '"' && b[j] != '{' && b[j] != '}' && b[j] != '[' &&
                           b[j] != ']' && b[j] != ',')
                        ++j;
                }
                auto keep = [&](std::size_t upto) {
                    if (element_too_large_) return;
                    element_.append(b.substr(i, upto - i));
                    if (element_.size() > lim_.max_document) {
                        element_too_large_ = true;
                        element_.clear();
                    }
                };
                if (j == n) {
                    keep(n);
                    i = n;
                    break;
                }
                const char s = b[j];
                if (in_string_) {
                    keep(j + 1);
                    i = j + 1;
                    if (s == '\\')
                        escape_ = true;
                    else
                        in_string_ = false;
                    break;
                }
                if (s == '"') {
                    keep(j + 1);
                    i = j + 1;
                    in_string_ = true;
                } else if (s == '{' || s == '[') {
                    keep(j + 1);
                    i = j + 1;
                    ++depth_;
                } else if (s == '}' || s == ']') {
                    if (depth_ == 0) {
                        // A scalar element ended by the array's ']' ('}' here is broken JSON).
                        keep(j);
                        i = j;
                        if (s == '}') {
                            go_raw(b.substr(i), emit);
                            return;
                        }
                        finish_element();
                    } else {
                        keep(j + 1);
                        i = j + 1;
                        if (--depth_ == 0) finish_element();
                    }
                } else {  // ','
                    if (depth_ == 0) {
                        keep(j);
                        i = j;
                        finish_element();
                    } else {
                        keep(j + 1);
                        i = j + 1;
                    }
                }
                break;
            }
            case cut_state::done:
                if (is_ws(c)) {
                    ++i;
                } else {
                    go_raw(b.substr(i), emit);
                    return;
                }
                break;
            case cut_state::raw:
                go_raw(b.substr(i), emit);
                return;
        }
    }
}

}  // namespace glasswatch::core
