// Splits a replay input, fed in chunks of any size, into documents the pipeline takes whole —
// holding at most one document in memory, whatever the size of the input (pure).
//
// Inputs `glasswatch replay` accepts:
//   NDJSON      one document per line (a record, a Graph page, a diagnostic body): chosen when
//               the first non-blank line is a complete JSON value. Each line is one document.
//   one document   anything else: the whole input is a single JSON document.
// A document larger than max_document (a week of logs exported as one Graph page or one
// {"records": [...]} body) is not held whole: its "value"/"records" array is cut into batches
// of about batch_bytes, each emitted wrapped the same way ({"value":[e1,e2,...]}), so every
// record still reaches the pipeline as a member of the same kind of page. A document that cannot
// be cut (not an object with such an array, or broken JSON) is passed on in raw pieces of at most
// batch_bytes: the pipeline counts them malformed and, where they mention a watched identifier,
// raises the fail-closed alert instead of losing them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace glasswatch::core {

class replay_splitter {
public:
    using emit_fn = std::function<void(std::string_view document)>;
    struct limits {
        // A Graph page of 1000 records is a few MB, an Event Hub body at most 1 MB: 16 MiB
        // holds any real one whole, and keeps replay under 64 MiB of RSS (the document, the
        // read chunk and the parser's padded copy).
        std::size_t max_document = std::size_t{16} << 20;
        std::size_t batch_bytes = std::size_t{2} << 20;
    };
    replay_splitter() : replay_splitter(limits{}) {}
    explicit replay_splitter(limits l) : lim_(l) {}

    void feed(std::string_view chunk, const emit_fn& emit);
    void finish(const emit_fn& emit);  // end of input

    bool ndjson() const noexcept { return mode_ == mode::ndjson; }
    const limits& limit() const noexcept { return lim_; }
    std::uint64_t documents_cut() const noexcept { return cut_; }  // too large, split
    std::uint64_t pieces_raw() const noexcept { return raw_; }     // could not be cut
    std::uint64_t records_too_large() const noexcept { return too_large_; }

private:
    enum class mode { detect, ndjson, single };
    // The cutter of one oversized document, byte by byte.
    enum class cut_state {
        root,         // before the top-level '{'
        key_expect,   // inside the object: a key, ',' or '}'
        key,          // inside a key string
        colon,        // after a key
        value_start,  // after ':'
        value_skip,   // a member that is not the array being cut
        array,        // inside the array: an element, ',' or ']'
        element,      // inside one element
        done,         // after the closing '}'
        raw,          // cannot be cut: raw pieces
    };

    void detect(const emit_fn& emit, bool at_end);
    void feed_ndjson(std::string_view chunk, const emit_fn& emit);
    void feed_single(std::string_view chunk, const emit_fn& emit);
    // The current document (begun in buf_) turned out too large: cut it from here on.
    void start_cut(const emit_fn& emit);
    void cut(std::string_view bytes, const emit_fn& emit);
    void end_cut(const emit_fn& emit);
    void flush_batch(const emit_fn& emit);
    void go_raw(std::string_view rest, const emit_fn& emit);

    limits lim_;
    mode mode_ = mode::detect;
    std::string buf_;  // detect: input so far; ndjson: a partial line; single: the document
    bool cutting_ = false;
    // cutter state
    cut_state st_ = cut_state::root;
    bool in_string_ = false, escape_ = false;
    int depth_ = 0;
    std::string key_, array_key_;
    std::string element_;  // the element being read
    bool element_too_large_ = false;
    std::string batch_;  // elements read, comma-separated
    std::string raw_piece_;
    std::uint64_t cut_ = 0, raw_ = 0, too_large_ = 0;
};

}  // namespace glasswatch::core
