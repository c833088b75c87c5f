// The store's SQL plumbing, shared by its translation units (internal to daemon/io/store):
// a prepared-statement wrapper and the row encodings used by more than one table.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/store/store.hpp"

namespace glasswatch::io::store_sql {

inline delivery_state parse_state(std::string_view s) {
    if (s == "accepted") return delivery_state::accepted;
    if (s == "confirmed") return delivery_state::confirmed;
    if (s == "failed") return delivery_state::failed;
    return delivery_state::pending;
}

// RAII prepared statement; binds by position, reads by column.
class stmt {
public:
    stmt(sqlite3* db, const char* sql) : db_(db) {
        prepare_rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
        rc_ = prepare_rc_;
    }
    ~stmt() { sqlite3_finalize(s_); }
    stmt(const stmt&) = delete;
    stmt& operator=(const stmt&) = delete;
    bool ok() const { return prepare_rc_ == SQLITE_OK && s_ != nullptr; }
    stmt& bind(int i, std::string_view v) {
        sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    stmt& bind_blob(int i, std::string_view v) {
        sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    stmt& bind(int i, std::int64_t v) {
        sqlite3_bind_int64(s_, i, v);
        return *this;
    }
    stmt& bind_null(int i) {
        sqlite3_bind_null(s_, i);
        return *this;
    }
    // SQLITE_ROW, SQLITE_DONE or an error code.
    int step() { return ok() ? (rc_ = sqlite3_step(s_)) : rc_; }
    std::string text(int c) const {
        auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c)))
                 : std::string();
    }
    std::string blob(int c) const {
        auto p = static_cast<const char*>(sqlite3_column_blob(s_, c));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c)))
                 : std::string();
    }
    std::int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
    bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
    int rc() const { return rc_; }
    std::string error() const { return sqlite3_errmsg(db_); }

private:
    sqlite3* db_;
    sqlite3_stmt* s_ = nullptr;
    int prepare_rc_ = SQLITE_ERROR;
    int rc_ = SQLITE_ERROR;  // last step() result
};

inline std::string join_rules(const core::alert& a) {
    std::string out;
    for (const auto& r : a.rules.empty() ? std::vector<std::string>{a.rule} : a.rules)
        out += (out.empty() ? "" : ",") + r;
    return out;
}

inline std::vector<std::string> split_rules(const std::string& text, const std::string& primary) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto comma = text.find(',', pos);
        if (comma == std::string::npos) comma = text.size();
        if (comma > pos) out.push_back(text.substr(pos, comma - pos));
        pos = comma + 1;
    }
    if (out.empty()) out.push_back(primary);
    return out;
}

// An alert's columns in the order every query that reads one selects them, from `first` (rule,
// severity, tenant_id, event_id, event_time, observed_at, subject_id, subject_label, drill_id,
// summary, sms, detail, rules); the id is the caller's.
inline void read_alert_columns(const stmt& q, int first, core::alert& a) {
    a.rule = q.text(first);
    a.sev = core::parse_severity(q.text(first + 1)).value_or(core::severity::critical);
    a.tenant_id = q.text(first + 2);
    a.event_id = q.text(first + 3);
    a.event_time = q.i64(first + 4);
    a.observed_at = q.i64(first + 5);
    a.subject_id = q.text(first + 6);
    a.subject_label = q.text(first + 7);
    a.drill_id = q.text(first + 8);
    a.drill = !a.drill_id.empty();
    a.summary = q.text(first + 9);
    a.sms = q.text(first + 10);
    a.detail_json = q.text(first + 11);
    a.rules = split_rules(q.text(first + 12), a.rule);
}

}  // namespace glasswatch::io::store_sql
