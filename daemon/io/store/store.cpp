#include "io/store/store.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/base/crypto.hpp"
#include "io/base/failpoint.hpp"

namespace glasswatch::io {

std::string_view to_string(delivery_state s) noexcept {
    switch (s) {
        case delivery_state::pending:
            return "pending";
        case delivery_state::accepted:
            return "accepted";
        case delivery_state::confirmed:
            return "confirmed";
        case delivery_state::failed:
            return "failed";
    }
    return "?";
}

namespace {

delivery_state parse_state(std::string_view s) {
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

constexpr const char* schema_v1 = R"SQL(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE alerts(
  alert_id TEXT PRIMARY KEY,
  rule TEXT NOT NULL,
  severity TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_time INTEGER NOT NULL,
  observed_at INTEGER NOT NULL,
  subject_id TEXT NOT NULL,
  subject_label TEXT NOT NULL,
  drill_id TEXT,
  summary TEXT NOT NULL,
  sms TEXT NOT NULL,
  detail TEXT NOT NULL,
  source TEXT NOT NULL);
CREATE INDEX alerts_observed ON alerts(observed_at);
CREATE TABLE outbox(
  alert_id TEXT NOT NULL REFERENCES alerts(alert_id),
  sink TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  accepted_at INTEGER,
  confirmed_at INTEGER,
  last_error TEXT,
  sink_ref TEXT,
  PRIMARY KEY(alert_id, sink));
CREATE INDEX outbox_due ON outbox(sink, state, next_attempt_at);
CREATE TABLE evidence(
  seq INTEGER PRIMARY KEY,
  alert_id TEXT NOT NULL,
  source TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  raw BLOB NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
CREATE INDEX evidence_alert ON evidence(alert_id);
CREATE TABLE checkpoints(source TEXT PRIMARY KEY, position TEXT NOT NULL, updated_at INTEGER NOT NULL);
)SQL";

constexpr const char* schema_v2 = R"SQL(
CREATE TABLE drills(
  drill_id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL,
  account_label TEXT NOT NULL,
  starts_at INTEGER NOT NULL,
  ends_at INTEGER NOT NULL,
  note TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE INDEX drills_account ON drills(account_id, starts_at);
CREATE INDEX alerts_drill ON alerts(drill_id);
)SQL";

// 3: alerts.rules (one alert per touch names every rule), sink_episodes (a broken sink is one
// episode with its recovery).
constexpr const char* schema_v3 = R"SQL(
ALTER TABLE alerts ADD COLUMN rules TEXT NOT NULL DEFAULT '';
UPDATE alerts SET rules=rule;
CREATE TABLE sink_episodes(
  sink TEXT NOT NULL,
  cause TEXT NOT NULL,
  opened_at INTEGER NOT NULL,
  holds INTEGER NOT NULL,
  detail TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  config_fp TEXT NOT NULL,
  released_at INTEGER,
  released_by TEXT,
  closed_at INTEGER,
  closed_by TEXT,
  PRIMARY KEY(sink, cause, opened_at));
CREATE INDEX sink_episodes_open ON sink_episodes(sink, closed_at);
)SQL";

const std::string genesis_hash(64, '0');

std::string join_rules(const core::alert& a) {
    std::string out;
    for (const auto& r : a.rules.empty() ? std::vector<std::string>{a.rule} : a.rules)
        out += (out.empty() ? "" : ",") + r;
    return out;
}

std::vector<std::string> split_rules(const std::string& text, const std::string& primary) {
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

micros now_micros() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

std::string evidence_hash(const std::string& prev_hash, std::int64_t seq,
                          const std::string& alert_id, const std::string& source,
                          micros recorded_at, const std::string& raw) {
    std::string material = prev_hash;
    material += '\n';
    material += std::to_string(seq);
    material += '\n';
    material += alert_id;
    material += '\n';
    material += source;
    material += '\n';
    material += std::to_string(recorded_at);
    material += '\n';
    material += core::sha256_hex(raw);
    return core::sha256_hex(material);
}

bool store::exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
        last_error_ = msg ? msg : sqlite3_errmsg(db_);
        sqlite3_free(msg);
        return false;
    }
    return true;
}

namespace {

// What an operator can do about a state file glasswatch refuses (the daemon never resets it).
constexpr const char* refused_advice =
    "glasswatch has not changed it and will not start on it. Keep it for the post-mortem; then "
    "restore the newest backup to this path, or move it (with any -wal/-shm file next to it) "
    "aside to start with empty state: sources then restart from initial_lookback / "
    "start_lookback, and alerts it held that were not delivered yet must be checked by hand";

// Creates a complete, empty state database at `path`: written as `path`.new, closed (durable,
// no journal left) and renamed into place, so a crash during the very first start leaves no
// half-made file. A glasswatch.db that exists is therefore always a whole database, and an
// empty or schema-less one is damage (truncation, a bad restore), never a fresh start.
bool create_fresh(const std::string& path, const std::string& schema_sql, std::string& error) {
    const std::string tmp = path + ".new";
    for (const char* suffix : {"", "-journal", "-wal", "-shm"})
        ::unlink((tmp + suffix).c_str());
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(tmp.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    char* msg = nullptr;
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, schema_sql.c_str(), nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
        error = msg ? msg : (db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_free(msg);
        sqlite3_close_v2(db);
        ::unlink(tmp.c_str());
        return false;
    }
    if (sqlite3_close(db) != SQLITE_OK) {
        error = "cannot close the new database";
        return false;
    }
    // synchronous=FULL made the file durable at COMMIT; the rename and the directory entry
    // need their own fsync.
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        error = std::string("cannot rename it into place: ") + std::strerror(errno);
        return false;
    }
    const std::string dir = std::filesystem::path(path).parent_path().string();
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    return true;
}

}  // namespace

std::unique_ptr<store> store::open(const std::string& state_dir, std::string& error,
                                   bool read_only) {
    std::unique_ptr<store> s(new store());
    std::error_code ec;
    s->path_ = (std::filesystem::path(state_dir) / "glasswatch.db").string();
    if (read_only && !std::filesystem::exists(s->path_)) {
        error = s->path_ + ": no state database (has the daemon run?)";
        return nullptr;
    }
    if (!read_only) {
        std::filesystem::create_directories(state_dir, ec);
        if (ec) {
            error = state_dir + ": cannot create the state directory: " + ec.message();
            return nullptr;
        }
        // Raw sign-in evidence (IPs, UPNs) is nobody else's business: the directory is the
        // daemon's alone, and files made before this rule are tightened too.
        ::chmod(state_dir.c_str(), 0700);
        for (const char* suffix : {"", "-wal", "-shm", "-journal"})
            ::chmod((s->path_ + suffix).c_str(), 0600);
        // SQLite needs to create its -wal/-shm files next to the database: a directory it
        // cannot write is a start-up error here, not a confusing one at the first commit.
        if (::access(state_dir.c_str(), W_OK | X_OK) != 0) {
            error = state_dir + ": the state directory is not writable (" + std::strerror(errno) +
                    "); glasswatch keeps its outbox, evidence and source positions there. Make "
                    "it writable for the daemon's user (mount, owner, StateDirectory=) and start "
                    "again";
            return nullptr;
        }
        if (!std::filesystem::exists(s->path_, ec)) {
            const std::string now = std::to_string(now_micros());
            std::string sql = std::string("PRAGMA synchronous=FULL;BEGIN IMMEDIATE;") + schema_v1 +
                              schema_v2 + schema_v3 +
                              "INSERT INTO meta(key,value) VALUES('schema_version','3');"
                              "INSERT INTO meta(key,value) VALUES('chain_genesis','" +
                              genesis_hash +
                              "');"
                              "INSERT INTO meta(key,value) VALUES('created_at','" +
                              now + "');COMMIT;";
            std::string why;
            if (!create_fresh(s->path_, sql, why)) {
                error = s->path_ + ": cannot create the state database: " + why;
                return nullptr;
            }
        }
    }
    if (std::filesystem::file_size(s->path_, ec) == 0 && !ec) {
        error = s->path_ +
                ": the state database is empty (0 bytes). glasswatch creates it complete and "
                "renames it into place, so it was truncated (a crash of the file system, a bad "
                "restore). " +
                refused_advice;
        return nullptr;
    }
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (sqlite3_open_v2(s->path_.c_str(), &s->db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
        error = s->path_ + ": cannot open: " + (s->db_ ? sqlite3_errmsg(s->db_) : "out of memory");
        return nullptr;
    }
    // Until the file is known good, closing must not checkpoint a WAL into it: a refused file
    // stays byte for byte what it was.
    sqlite3_db_config(s->db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    sqlite3_busy_timeout(s->db_, 5000);
    sqlite3_extended_result_codes(s->db_, 1);
    auto fail = [&](const std::string& what) {
        error = s->path_ + ": " + what;
        return nullptr;
    };
    // A file that is not a database (or is damaged) fails here rather than being replaced.
    {
        stmt q(s->db_, "PRAGMA quick_check");
        if (!q.ok())
            return fail("not a glasswatch database or corrupt (" +
                        std::string(sqlite3_errmsg(s->db_)) + "); refusing to touch it. " +
                        refused_advice);
        int rc = q.step();
        if (rc != SQLITE_ROW || q.text(0) != "ok") {
            std::string why = rc == SQLITE_ROW ? q.text(0) : q.error();
            std::replace(why.begin(), why.end(), '\n', ' ');  // one log line
            return fail("database is corrupt (" + why + "); refusing to touch it. " +
                        refused_advice);
        }
    }
    if (!read_only && sqlite3_db_readonly(s->db_, "main") == 1)
        return fail(
            "the state database is not writable (read-only file or file system); make it "
            "writable for the daemon's user and start again");
    if (!read_only) {
        if (!s->exec("PRAGMA journal_mode=WAL") || !s->exec("PRAGMA synchronous=FULL") ||
            !s->exec("PRAGMA foreign_keys=ON"))
            return fail("cannot configure: " + s->last_error_);
    }
    // Schema version: 0 = empty file.
    int version = 0;
    {
        stmt t(s->db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'");
        if (t.step() != SQLITE_ROW) return fail("cannot read schema: " + t.error());
        if (t.i64(0) == 1) {
            stmt v(s->db_, "SELECT value FROM meta WHERE key='schema_version'");
            if (v.step() != SQLITE_ROW)
                return fail("database has no schema version; not a glasswatch database");
            version = std::atoi(v.text(0).c_str());
            if (version <= 0) return fail("invalid schema version '" + v.text(0) + "'");
        } else {
            stmt any(s->db_, "SELECT count(*) FROM sqlite_master");
            if (any.step() == SQLITE_ROW && any.i64(0) > 0)
                return fail("database holds tables but no glasswatch schema; refusing to touch it");
            // create_fresh() never leaves a schema-less file behind: this one lost its content.
            return fail(std::string("database holds no glasswatch schema (truncated or "
                                    "overwritten?). ") +
                        refused_advice);
        }
    }
    if (version > store_schema_version)
        return fail("database schema version " + std::to_string(version) +
                    " is newer than this glasswatch understands (" +
                    std::to_string(store_schema_version) +
                    "); upgrade glasswatch instead of downgrading the state");
    s->schema_version_ = version;
    if (read_only) return s;
    // Migrations: each step in its own transaction, so a crash mid-migration leaves the old
    // version intact.
    if (version == 1) {
        const std::string now = std::to_string(now_micros());
        std::string sql = std::string("BEGIN IMMEDIATE;") + schema_v2 +
                          "INSERT OR IGNORE INTO meta(key,value) VALUES('created_at','" + now +
                          "');UPDATE meta SET value='2' WHERE key='schema_version';COMMIT;";
        if (!s->exec(sql.c_str())) {
            s->exec("ROLLBACK");
            return fail("cannot migrate schema to version 2: " + s->last_error_);
        }
        version = 2;
    }
    if (version == 2) {
        std::string sql = std::string("BEGIN IMMEDIATE;") + schema_v3 +
                          "UPDATE meta SET value='3' WHERE key='schema_version';COMMIT;";
        if (!s->exec(sql.c_str())) {
            s->exec("ROLLBACK");
            return fail("cannot migrate schema to version 3: " + s->last_error_);
        }
        version = 3;
    }
    s->schema_version_ = version;
    sqlite3_db_config(s->db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
    return s;
}

store::~store() {
    if (db_) sqlite3_close_v2(db_);
}

commit_result store::commit(const std::vector<routed_finding>& findings,
                            const std::vector<checkpoint>& checkpoints, micros now) {
    commit_result r;
    auto abort = [&](const std::string& what) {
        r.ok = false;
        r.error = what;
        r.new_alerts.clear();
        r.duplicates = 0;
        exec("ROLLBACK");
        return r;
    };
    // Test hook (fault tests): while this file exists the disk is "full".
    if (const char* full = std::getenv("GLASSWATCH_TEST_STORE_FULL_FILE");
        full && ::access(full, F_OK) == 0) {
        r.error = "database or disk is full (test hook)";
        return r;
    }
    if (!exec("BEGIN IMMEDIATE")) {
        r.error = "begin: " + last_error_;
        return r;
    }
    for (const auto& rf : findings) {
        core::alert a = rf.f.a;
        // A declared drill covering this account at the event's time labels the alert.
        if (!a.drill && !a.subject_id.empty() && rf.f.source != "health") {
            stmt d(db_,
                   "SELECT drill_id FROM drills WHERE account_id=? AND starts_at<=? AND ends_at>=? "
                   "ORDER BY starts_at DESC LIMIT 1");
            d.bind(1, a.subject_id).bind(2, a.event_time).bind(3, a.event_time);
            int rc = d.step();
            if (rc == SQLITE_ROW)
                core::label_drill(a, d.text(0));
            else if (rc != SQLITE_DONE)
                return abort("read drills: " + d.error());
        }
        stmt ins(
            db_,
            "INSERT OR IGNORE INTO alerts(alert_id,rule,severity,tenant_id,event_id,event_time,"
            "observed_at,subject_id,subject_label,drill_id,summary,sms,detail,source,rules) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        ins.bind(1, a.id)
            .bind(2, a.rule)
            .bind(3, core::to_string(a.sev))
            .bind(4, a.tenant_id)
            .bind(5, a.event_id)
            .bind(6, a.event_time)
            .bind(7, a.observed_at)
            .bind(8, a.subject_id)
            .bind(9, a.subject_label);
        if (a.drill)
            ins.bind(10, a.drill_id);
        else
            ins.bind_null(10);
        ins.bind(11, a.summary).bind(12, a.sms).bind(13, a.detail_json).bind(14, rf.f.source);
        ins.bind(15, join_rules(a));
        if (ins.step() != SQLITE_DONE) return abort("insert alert: " + ins.error());
        if (sqlite3_changes(db_) == 0) {
            ++r.duplicates;  // same event seen again: the alert is already queued or delivered
            continue;
        }
        r.new_alerts.push_back(a.id);
        if (a.drill) r.drill_alerts.push_back(a.id);
        for (const auto& sink : rf.sinks) {
            stmt ob(db_,
                    "INSERT OR IGNORE INTO "
                    "outbox(alert_id,sink,state,attempts,next_attempt_at,created_at) "
                    "VALUES(?,?,'pending',0,?,?)");
            ob.bind(1, a.id).bind(2, sink).bind(3, now).bind(4, now);
            if (ob.step() != SQLITE_DONE) return abort("insert outbox: " + ob.error());
        }
        if (!append_evidence(a.id, rf.f.source, now, rf.f.raw))
            return abort("insert evidence: " + last_error_);
    }
    for (const auto& c : checkpoints) {
        stmt cp(db_,
                "INSERT INTO checkpoints(source,position,updated_at) VALUES(?,?,?) "
                "ON CONFLICT(source) DO UPDATE SET position=excluded.position, "
                "updated_at=excluded.updated_at");
        cp.bind(1, c.source).bind(2, c.position).bind(3, now);
        if (cp.step() != SQLITE_DONE) return abort("write checkpoint: " + cp.error());
    }
    if (!findings.empty()) failpoint("before_outbox_commit");
    if (!checkpoints.empty()) failpoint("mid_checkpoint");
    if (!exec("COMMIT")) return abort("commit: " + last_error_);
    r.ok = true;
    return r;
}

bool store::append_evidence(const std::string& alert_id, const std::string& source, micros now,
                            const std::string& raw) {
    std::string prev_hash = genesis_hash;
    std::int64_t next_seq = 1;
    stmt last(db_, "SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1");
    int rc = last.step();
    if (rc == SQLITE_ROW) {
        next_seq = last.i64(0) + 1;
        prev_hash = last.text(1);
    } else if (rc != SQLITE_DONE) {
        last_error_ = "read evidence head: " + last.error();
        return false;
    }
    std::string h = evidence_hash(prev_hash, next_seq, alert_id, source, now, raw);
    stmt ev(db_,
            "INSERT INTO evidence(seq,alert_id,source,recorded_at,raw,prev_hash,hash) "
            "VALUES(?,?,?,?,?,?,?)");
    ev.bind(1, next_seq)
        .bind(2, alert_id)
        .bind(3, source)
        .bind(4, now)
        .bind_blob(5, raw)
        .bind(6, prev_hash)
        .bind(7, h);
    if (ev.step() != SQLITE_DONE) {
        last_error_ = ev.error();
        return false;
    }
    return true;
}

std::optional<std::string> store::load_checkpoint(const std::string& source) {
    stmt q(db_, "SELECT position FROM checkpoints WHERE source=?");
    q.bind(1, source);
    if (q.step() == SQLITE_ROW) return q.text(0);
    return std::nullopt;
}

std::vector<checkpoint> store::load_checkpoints(const std::string& prefix) {
    std::vector<checkpoint> out;
    stmt q(db_,
           "SELECT source, position FROM checkpoints WHERE substr(source,1,length(?))=? ORDER BY "
           "source");
    q.bind(1, prefix).bind(2, prefix);
    while (q.step() == SQLITE_ROW)
        out.push_back({q.text(0), q.text(1)});
    return out;
}

namespace {
constexpr const char* outbox_select_v3 =
    "SELECT o.alert_id,o.sink,o.state,o.attempts,o.next_attempt_at,o.created_at,"
    "coalesce(o.accepted_at,0),coalesce(o.confirmed_at,0),coalesce(o.last_error,''),coalesce(o."
    "sink_ref,''),"
    "a.rule,a.severity,a.tenant_id,a.event_id,a.event_time,a.observed_at,a.subject_id,a.subject_"
    "label,"
    "coalesce(a.drill_id,''),a.summary,a.sms,a.detail,a.rules "
    "FROM outbox o JOIN alerts a ON a.alert_id=o.alert_id ";
// A read-only look (a CLI command) at a state file the daemon has not migrated yet.
constexpr const char* outbox_select_v2 =
    "SELECT o.alert_id,o.sink,o.state,o.attempts,o.next_attempt_at,o.created_at,"
    "coalesce(o.accepted_at,0),coalesce(o.confirmed_at,0),coalesce(o.last_error,''),coalesce(o."
    "sink_ref,''),"
    "a.rule,a.severity,a.tenant_id,a.event_id,a.event_time,a.observed_at,a.subject_id,a.subject_"
    "label,"
    "coalesce(a.drill_id,''),a.summary,a.sms,a.detail,a.rule "
    "FROM outbox o JOIN alerts a ON a.alert_id=o.alert_id ";

outbox_row read_row(stmt& q) {
    outbox_row r;
    r.alert_id = q.text(0);
    r.sink = q.text(1);
    r.state = parse_state(q.text(2));
    r.attempts = static_cast<int>(q.i64(3));
    r.next_attempt_at = q.i64(4);
    r.created_at = q.i64(5);
    r.accepted_at = q.i64(6);
    r.confirmed_at = q.i64(7);
    r.last_error = q.text(8);
    r.sink_ref = q.text(9);
    core::alert& a = r.a;
    a.id = r.alert_id;
    a.rule = q.text(10);
    a.sev = core::parse_severity(q.text(11)).value_or(core::severity::critical);
    a.tenant_id = q.text(12);
    a.event_id = q.text(13);
    a.event_time = q.i64(14);
    a.observed_at = q.i64(15);
    a.subject_id = q.text(16);
    a.subject_label = q.text(17);
    a.drill_id = q.text(18);
    a.drill = !a.drill_id.empty();
    a.summary = q.text(19);
    a.sms = q.text(20);
    a.detail_json = q.text(21);
    a.rules = split_rules(q.text(22), a.rule);
    return r;
}
}  // namespace

const char* store::outbox_select() const noexcept {
    return schema_version_ >= 3 ? outbox_select_v3 : outbox_select_v2;
}

std::vector<outbox_row> store::due(const std::string& sink, micros now, int limit) {
    std::vector<outbox_row> out;
    std::string sql = std::string(outbox_select()) +
                      "WHERE o.sink=? AND o.state='pending' AND (o.next_attempt_at<=? OR "
                      "o.next_attempt_at>?) ORDER BY o.next_attempt_at, o.created_at LIMIT ?";
    stmt q(db_, sql.c_str());
    q.bind(1, sink).bind(2, now).bind(3, now + max_schedule_ahead);
    q.bind(4, static_cast<std::int64_t>(limit));
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

std::int64_t store::shift_schedule(const std::string& sink, micros step, micros now) {
    stmt q(db_,
           "UPDATE outbox SET next_attempt_at=next_attempt_at+? "
           "WHERE sink=? AND state='pending' AND next_attempt_at>?");
    q.bind(1, step).bind(2, sink).bind(3, now - step);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return -1;
    }
    return sqlite3_changes(db_);
}

std::vector<outbox_row> store::pending_all() {
    std::vector<outbox_row> out;
    std::string sql =
        std::string(outbox_select()) + "WHERE o.state='pending' ORDER BY o.created_at";
    stmt q(db_, sql.c_str());
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

std::vector<outbox_row> store::deliveries_of(const std::string& alert_id) {
    std::vector<outbox_row> out;
    std::string sql = std::string(outbox_select()) + "WHERE o.alert_id=? ORDER BY o.sink";
    stmt q(db_, sql.c_str());
    q.bind(1, alert_id);
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

bool store::mark_accepted(const std::string& alert_id, const std::string& sink, micros now,
                          const std::string& sink_ref, bool confirmed) {
    stmt q(db_,
           "UPDATE outbox SET state=?, attempts=attempts+1, accepted_at=?, confirmed_at=?, "
           "sink_ref=?, "
           "last_error=NULL WHERE alert_id=? AND sink=?");
    q.bind(1, confirmed ? "confirmed" : "accepted").bind(2, now);
    if (confirmed)
        q.bind(3, now);
    else
        q.bind_null(3);
    q.bind(4, sink_ref).bind(5, alert_id).bind(6, sink);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

bool store::mark_confirmed(const std::string& alert_id, const std::string& sink, micros now) {
    stmt q(db_, "UPDATE outbox SET state='confirmed', confirmed_at=? WHERE alert_id=? AND sink=?");
    q.bind(1, now).bind(2, alert_id).bind(3, sink);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

bool store::mark_retry(const std::string& alert_id, const std::string& sink, micros next_attempt,
                       const std::string& error, const std::string& sink_ref) {
    stmt q(db_,
           "UPDATE outbox SET attempts=attempts+1, next_attempt_at=?, last_error=?, "
           "sink_ref=coalesce(nullif(?,''),sink_ref) WHERE alert_id=? AND sink=?");
    q.bind(1, next_attempt).bind(2, error).bind(3, sink_ref).bind(4, alert_id).bind(5, sink);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

bool store::mark_failed(const std::string& alert_id, const std::string& sink, micros now,
                        const std::string& error) {
    stmt q(db_,
           "UPDATE outbox SET state='failed', attempts=attempts+1, last_error=?, next_attempt_at=? "
           "WHERE alert_id=? AND sink=?");
    q.bind(1, error).bind(2, now).bind(3, alert_id).bind(4, sink);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

bool store::set_sink_ref(const std::string& alert_id, const std::string& sink,
                         const std::string& sink_ref) {
    stmt q(db_, "UPDATE outbox SET sink_ref=? WHERE alert_id=? AND sink=?");
    q.bind(1, sink_ref).bind(2, alert_id).bind(3, sink);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

std::vector<outbox_row> store::list_outbox(const std::string& sink,
                                           std::optional<delivery_state> state, int limit) {
    std::vector<outbox_row> out;
    std::string sql = std::string(outbox_select()) +
                      "WHERE (?='' OR o.sink=?) AND (?='' OR o.state=?) "
                      "ORDER BY o.created_at DESC, o.alert_id, o.sink LIMIT ?";
    stmt q(db_, sql.c_str());
    const std::string st = state ? std::string(to_string(*state)) : std::string();
    q.bind(1, sink).bind(2, sink).bind(3, st).bind(4, st);
    q.bind(5, static_cast<std::int64_t>(limit));
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

requeue_result store::requeue(const std::string& sink, const std::string& alert_id, micros now,
                              const std::string& actor) {
    requeue_result r;
    if (!exec("BEGIN IMMEDIATE")) {
        r.error = "begin: " + last_error_;
        return r;
    }
    auto abort = [&](const std::string& what) {
        r = requeue_result{};
        r.error = what;
        exec("ROLLBACK");
        return r;
    };
    std::vector<std::string> sinks;
    {
        stmt q(db_,
               "SELECT DISTINCT sink FROM outbox WHERE (?='' OR sink=?) AND (?='' OR alert_id=?) "
               "ORDER BY sink");
        q.bind(1, sink).bind(2, sink).bind(3, alert_id).bind(4, alert_id);
        while (q.step() == SQLITE_ROW)
            sinks.push_back(q.text(0));
        if (!sink.empty() && sinks.empty()) sinks.push_back(sink);
    }
    {
        stmt q(db_,
               "UPDATE outbox SET state='pending', next_attempt_at=?, "
               "last_error='re-queued by the operator after: '||coalesce(last_error,'') "
               "WHERE state='failed' AND (?='' OR sink=?) AND (?='' OR alert_id=?)");
        q.bind(1, now).bind(2, sink).bind(3, sink).bind(4, alert_id).bind(5, alert_id);
        if (q.step() != SQLITE_DONE) return abort("re-queue: " + q.error());
        r.rows = sqlite3_changes(db_);
    }
    for (const auto& s : sinks) {
        if (!release_episodes(s, now, actor)) return abort("release episodes: " + last_error_);
        if (sqlite3_changes(db_) > 0) r.sinks.push_back(s);
    }
    nlohmann::json note = {{"action", "outbox_retry"}, {"actor", actor}, {"sink", sink},
                           {"alert", alert_id},        {"rows", r.rows}, {"released", r.sinks}};
    if (!append_evidence(alert_id, "operator", now, note.dump()))
        return abort("evidence: " + last_error_);
    if (!exec("COMMIT")) return abort("commit: " + last_error_);
    r.ok = true;
    return r;
}

namespace {
sink_episode read_episode(stmt& q) {
    sink_episode e;
    e.sink = q.text(0);
    e.cause = q.text(1);
    e.opened_at = q.i64(2);
    e.holds = q.i64(3) != 0;
    e.detail = q.text(4);
    e.alert_id = q.text(5);
    e.config_fp = q.text(6);
    e.closed_at = q.is_null(7) ? 0 : q.i64(7);
    e.closed_by = q.text(8);
    e.released_at = q.is_null(9) ? 0 : q.i64(9);
    e.released_by = q.text(10);
    return e;
}
constexpr const char* episode_columns =
    "SELECT sink,cause,opened_at,holds,detail,alert_id,config_fp,closed_at,"
    "coalesce(closed_by,''),released_at,coalesce(released_by,'') FROM sink_episodes ";
}  // namespace

bool store::open_episode(const sink_episode& e) {
    stmt q(db_,
           "INSERT OR IGNORE INTO sink_episodes(sink,cause,opened_at,holds,detail,alert_id,"
           "config_fp) VALUES(?,?,?,?,?,?,?)");
    q.bind(1, e.sink)
        .bind(2, e.cause)
        .bind(3, e.opened_at)
        .bind(4, static_cast<std::int64_t>(e.holds ? 1 : 0))
        .bind(5, e.detail)
        .bind(6, e.alert_id)
        .bind(7, e.config_fp);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

std::vector<sink_episode> store::open_episodes(const std::string& sink) {
    std::vector<sink_episode> out;
    if (schema_version_ < 3) return out;
    std::string sql = std::string(episode_columns) +
                      "WHERE closed_at IS NULL AND (?='' OR sink=?) ORDER BY sink, opened_at";
    stmt q(db_, sql.c_str());
    q.bind(1, sink).bind(2, sink);
    while (q.step() == SQLITE_ROW)
        out.push_back(read_episode(q));
    return out;
}

std::vector<sink_episode> store::close_episodes(const std::string& sink, micros now,
                                                const std::string& by) {
    auto open = open_episodes(sink);
    if (open.empty()) return open;
    stmt q(db_,
           "UPDATE sink_episodes SET closed_at=?, closed_by=? WHERE sink=? AND closed_at IS NULL");
    q.bind(1, now).bind(2, by).bind(3, sink);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return {};
    }
    for (auto& e : open) {
        e.closed_at = now;
        e.closed_by = by;
    }
    return open;
}

bool store::release_episodes(const std::string& sink, micros now, const std::string& by) {
    stmt q(db_,
           "UPDATE sink_episodes SET released_at=?, released_by=? "
           "WHERE sink=? AND closed_at IS NULL AND holds=1 AND released_at IS NULL");
    q.bind(1, now).bind(2, by).bind(3, sink);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

bool store::rehold_episode(const std::string& sink, const std::string& cause) {
    stmt q(db_,
           "UPDATE sink_episodes SET released_at=NULL, released_by=NULL, holds=1 "
           "WHERE sink=? AND cause=? AND closed_at IS NULL");
    q.bind(1, sink).bind(2, cause);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

std::vector<outbox_row> store::awaiting_confirmation(const std::string& sink, int limit) {
    std::vector<outbox_row> out;
    std::string sql = std::string(outbox_select()) +
                      "WHERE o.sink=? AND o.state='accepted' ORDER BY o.accepted_at LIMIT ?";
    stmt q(db_, sql.c_str());
    q.bind(1, sink).bind(2, static_cast<std::int64_t>(limit));
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

std::vector<std::string> store::unconfirmed_without(const std::string& sink, const std::string& to,
                                                    micros older_than) {
    std::vector<std::string> out;
    stmt q(db_,
           "SELECT o.alert_id FROM outbox o WHERE o.sink=? AND o.state<>'confirmed' AND "
           "o.created_at<=? "
           "AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.alert_id=o.alert_id AND e.sink=?) LIMIT "
           "100");
    q.bind(1, sink).bind(2, older_than).bind(3, to);
    while (q.step() == SQLITE_ROW)
        out.push_back(q.text(0));
    return out;
}

bool store::add_outbox(const std::string& alert_id, const std::string& sink, micros now) {
    stmt q(db_,
           "INSERT OR IGNORE INTO outbox(alert_id,sink,state,attempts,next_attempt_at,created_at) "
           "VALUES(?,?,'pending',0,?,?)");
    q.bind(1, alert_id).bind(2, sink).bind(3, now).bind(4, now);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

std::int64_t store::count_in_state(const std::string& sink, delivery_state state) {
    stmt q(db_, "SELECT count(*) FROM outbox WHERE sink=? AND state=?");
    q.bind(1, sink).bind(2, to_string(state));
    return q.step() == SQLITE_ROW ? q.i64(0) : -1;
}

std::int64_t store::outbox_depth() {
    stmt q(db_, "SELECT count(*) FROM outbox WHERE state='pending'");
    return q.step() == SQLITE_ROW ? q.i64(0) : -1;
}

std::map<std::string, std::int64_t> store::pending_by_sink() {
    std::map<std::string, std::int64_t> out;
    stmt q(db_, "SELECT sink, count(*) FROM outbox WHERE state='pending' GROUP BY sink");
    while (q.step() == SQLITE_ROW)
        out[q.text(0)] = q.i64(1);
    return out;
}

std::optional<micros> store::oldest_undelivered() {
    stmt q(db_, "SELECT min(created_at) FROM outbox WHERE state='pending'");
    if (q.step() == SQLITE_ROW && !q.is_null(0)) return q.i64(0);
    return std::nullopt;
}

std::optional<core::alert> store::get_alert(const std::string& alert_id) {
    std::string sql = std::string(outbox_select()) + "WHERE o.alert_id=? LIMIT 1";
    stmt q(db_, sql.c_str());
    q.bind(1, alert_id);
    if (q.step() == SQLITE_ROW) return read_row(q).a;
    return std::nullopt;
}

std::vector<evidence_row> store::evidence_since(micros since) {
    std::vector<evidence_row> out;
    stmt q(db_,
           "SELECT seq,alert_id,source,recorded_at,raw,prev_hash,hash FROM evidence WHERE "
           "recorded_at>=? ORDER BY seq");
    q.bind(1, since);
    while (q.step() == SQLITE_ROW)
        out.push_back({q.i64(0), q.text(1), q.text(2), q.i64(3), q.blob(4), q.text(5), q.text(6)});
    return out;
}

chain_report store::verify_chain() {
    chain_report rep;
    stmt q(db_,
           "SELECT seq,alert_id,source,recorded_at,raw,prev_hash,hash FROM evidence ORDER BY seq");
    std::string prev = genesis_hash;
    std::int64_t expect_seq = 1;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
        ++rep.rows;
        std::int64_t seq = q.i64(0);
        auto bad = [&](std::string why) {
            rep.ok = false;
            rep.first_bad_seq = seq;
            rep.problem = std::move(why);
        };
        if (seq != expect_seq) {
            bad("row " + std::to_string(expect_seq) + " is missing (next row is " +
                std::to_string(seq) + ")");
            return rep;
        }
        if (q.text(5) != prev) {
            bad("prev_hash does not link to row " + std::to_string(seq - 1));
            return rep;
        }
        std::string h = evidence_hash(prev, seq, q.text(1), q.text(2), q.i64(3), q.blob(4));
        if (h != q.text(6)) {
            bad("content does not match its hash (row altered)");
            return rep;
        }
        prev = h;
        ++expect_seq;
    }
    if (rc != SQLITE_DONE) {
        rep.ok = false;
        rep.problem = "cannot read evidence: " + q.error();
    }
    return rep;
}

bool store::add_drill(const drill& d) {
    stmt q(
        db_,
        "INSERT INTO drills(drill_id,account_id,account_label,starts_at,ends_at,note,created_at) "
        "VALUES(?,?,?,?,?,?,?)");
    q.bind(1, d.id)
        .bind(2, d.account_id)
        .bind(3, d.account_label)
        .bind(4, d.starts_at)
        .bind(5, d.ends_at)
        .bind(6, d.note)
        .bind(7, d.created_at);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return false;
    }
    return true;
}

std::vector<drill> store::drills_since(micros since) {
    std::vector<drill> out;
    stmt q(db_,
           "SELECT drill_id,account_id,account_label,starts_at,ends_at,note,created_at FROM drills "
           "WHERE ends_at>=? ORDER BY starts_at");
    q.bind(1, since);
    while (q.step() == SQLITE_ROW) {
        drill d;
        d.id = q.text(0);
        d.account_id = q.text(1);
        d.account_label = q.text(2);
        d.starts_at = q.i64(3);
        d.ends_at = q.i64(4);
        d.note = q.text(5);
        d.created_at = q.i64(6);
        out.push_back(std::move(d));
    }
    return out;
}

std::vector<std::string> store::alerts_of_drill(const std::string& drill_id) {
    std::vector<std::string> out;
    stmt q(db_, "SELECT alert_id FROM alerts WHERE drill_id=? ORDER BY event_time");
    q.bind(1, drill_id);
    while (q.step() == SQLITE_ROW)
        out.push_back(q.text(0));
    return out;
}

std::optional<micros> store::last_successful_drill(const std::string& account_id) {
    stmt q(db_,
           "SELECT max(d.starts_at) FROM drills d JOIN alerts a ON a.drill_id=d.drill_id "
           "JOIN outbox o ON o.alert_id=a.alert_id "
           "WHERE d.account_id=? AND o.state IN ('accepted','confirmed')");
    q.bind(1, account_id);
    if (q.step() == SQLITE_ROW && !q.is_null(0)) return q.i64(0);
    return std::nullopt;
}

micros store::created_at() {
    stmt q(db_, "SELECT value FROM meta WHERE key='created_at'");
    if (q.step() == SQLITE_ROW) return std::atoll(q.text(0).c_str());
    return 0;
}

std::unique_ptr<state_lock> state_lock::acquire(const std::string& state_dir, std::string& error) {
    const std::string path = (std::filesystem::path(state_dir) / "glasswatch.lock").string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = path + ": cannot open the instance lock: " + std::strerror(errno);
        return nullptr;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int why = errno;
        char buf[32] = {};
        const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' '))
            holder.pop_back();
        if (why == EWOULDBLOCK)
            error = state_dir + " is in use by another glasswatch run" +
                    (holder.empty() ? std::string() : " (pid " + holder + ")") +
                    ": one daemon per state directory (a second instance needs its own)";
        else
            error = path + ": cannot lock: " + std::strerror(why);
        return nullptr;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        // The lock holds all the same; only the PID in the message of a second run is lost.
    }
    return std::unique_ptr<state_lock>(new state_lock(fd));
}

state_lock::~state_lock() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace glasswatch::io
