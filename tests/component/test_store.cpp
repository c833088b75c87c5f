#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <map>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "io/delivery/file_sink.hpp"
#include "io/store/store.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch;
namespace fs = std::filesystem;

namespace {

std::int64_t alert_entries(io::store& db) {
    std::int64_t n = 0;
    for (const auto& e : db.evidence_entries(1))
        n += e.kind == "alert";
    return n;
}

}  // namespace

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/glasswatch-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

core::finding finding_for(const std::string& event_id,
                          const std::string& rule = "breakglass_signin") {
    core::alert_context ctx{test::tenant, "contoso"};
    core::event ev;
    ev.id = event_id;
    ev.time = 1000;
    ev.raw = "{\"id\":\"" + event_id + "\"}";
    core::match m{rule, core::severity::critical, test::adele, "bg-1", "test"};
    return {core::make_event_alert(ctx, ev, m, 2000), ev.raw, "graph"};
}

void sql(const fs::path& db, const std::string& statement) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    char* msg = nullptr;
    int rc = sqlite3_exec(h, statement.c_str(), nullptr, nullptr, &msg);
    INFO((msg ? msg : ""));
    sqlite3_free(msg);
    sqlite3_close(h);
    REQUIRE(rc == SQLITE_OK);
}

}  // namespace

TEST_CASE("commit writes alerts / outbox rows / evidence and checkpoint together", "[store]") {
    temp_dir dir;
    std::string err;
    auto db = io::store::open(dir.path, err);
    REQUIRE(db);
    auto f1 = finding_for("e1"), f2 = finding_for("e2");
    auto r = db->commit({{f1, {"file", "pager"}}, {f2, {"file"}}}, {{"graph:signins", "cursor-1"}},
                        3000);
    REQUIRE(r.ok);
    CHECK(r.new_alerts.size() == 2);
    CHECK(db->load_checkpoint("graph:signins") == "cursor-1");
    CHECK(db->outbox_depth() == 3);
    CHECK(db->oldest_undelivered() == 3000);
    auto due = db->due("file", 3000, 10);
    REQUIRE(due.size() == 2);
    CHECK(due[0].a.rule == "breakglass_signin");
    CHECK(due[0].a.sms == f1.a.sms);
    CHECK(db->due("pager", 2999, 10).empty());  // not yet due

    SECTION("the same event again does not page twice") {
        auto again = db->commit({{finding_for("e1"), {"file", "pager"}}},
                                {{"graph:signins", "cursor-2"}}, 4000);
        REQUIRE(again.ok);
        CHECK(again.new_alerts.empty());
        CHECK(again.duplicates == 1);
        CHECK(db->outbox_depth() == 3);
        CHECK(db->load_checkpoint("graph:signins") == "cursor-2");
        CHECK(alert_entries(*db) == 2);
    }
    SECTION("delivery states") {
        REQUIRE(db->mark_retry(f1.a.id, "file", 9000, "connection refused"));
        CHECK(db->due("file", 5000, 10).size() == 1);
        REQUIRE(db->mark_accepted(f2.a.id, "file", 5000, "ref-2", false));
        REQUIRE(db->mark_confirmed(f2.a.id, "file", 6000));
        REQUIRE(db->mark_failed(f1.a.id, "pager", 6000, "400 bad routing key"));
        auto rows = db->deliveries_of(f1.a.id);
        REQUIRE(rows.size() == 2);
        CHECK(rows[0].sink == "file");
        CHECK(rows[0].attempts == 1);
        CHECK(rows[0].last_error == "connection refused");
        CHECK(rows[1].state == io::delivery_state::failed);
        auto r2 = db->deliveries_of(f2.a.id);
        CHECK(r2[0].state == io::delivery_state::confirmed);
        CHECK(r2[0].sink_ref == "ref-2");
        CHECK(r2[0].confirmed_at == 6000);
        CHECK(db->outbox_depth() == 1);
    }
}

TEST_CASE("evidence is sealed as it is written and verify names the first tampered entry",
          "[store][evidence]") {
    temp_dir dir;
    std::string err;
    std::int64_t third_alert = 0;
    {
        auto db = io::store::open(dir.path, err);
        REQUIRE(db);
        for (int i = 0; i < 5; ++i)
            REQUIRE(
                db->commit({{finding_for("ev" + std::to_string(i)), {"file"}}}, {}, 100 + i).ok);
        auto rep = db->verify_evidence({});
        INFO(rep.problem);
        CHECK(rep.ok);
        CHECK(alert_entries(*db) == 5);
        // Each alert is sealed by the transaction that stores it.
        CHECK(db->evidence()->unsealed == 0);
        int n = 0;
        for (const auto& e : db->evidence_entries(1))
            if (e.kind == "alert" && ++n == 3) third_alert = e.seq;
    }
    REQUIRE(third_alert > 0);
    SECTION("an edited entry") {
        sql(dir.path / "glasswatch.db",
            "UPDATE chain SET body = '{}' WHERE seq = " + std::to_string(third_alert));
        auto db = io::store::open(dir.path, err);
        REQUIRE(db);
        auto rep = db->verify_evidence({});
        CHECK_FALSE(rep.ok);
        CHECK(rep.first_bad_seq == third_alert);
        CHECK(rep.problem.find("altered") != std::string::npos);
    }
    SECTION("a deleted entry") {
        sql(dir.path / "glasswatch.db",
            "DELETE FROM chain WHERE seq = " + std::to_string(third_alert));
        auto db = io::store::open(dir.path, err, /*read_only=*/true);
        REQUIRE(db);
        auto rep = db->verify_evidence({});
        CHECK_FALSE(rep.ok);
        CHECK(rep.first_bad_seq == third_alert);
    }
    SECTION("an edited alert row") {
        sql(dir.path / "glasswatch.db",
            "UPDATE alerts SET summary = 'nothing happened' WHERE rowid = 3");
        auto db = io::store::open(dir.path, err, /*read_only=*/true);
        auto rep = db->verify_evidence({});
        CHECK_FALSE(rep.ok);
        CHECK(rep.problem.find("summary differs") != std::string::npos);
    }
}

TEST_CASE("a corrupt / foreign or newer database is refused / never reset", "[store]") {
    temp_dir dir;
    std::string err;
    auto file = dir.path / "glasswatch.db";
    SECTION("garbage bytes") {
        std::ofstream(file) << std::string(8192, 'x');
        auto size = fs::file_size(file);
        CHECK_FALSE(io::store::open(dir.path, err));
        CHECK(err.find("refusing to touch it") != std::string::npos);
        CHECK(fs::file_size(file) == size);  // untouched
    }
    SECTION("damaged pages of a real database") {
        {
            auto db = io::store::open(dir.path, err);
            REQUIRE(db);
            for (int i = 0; i < 50; ++i)
                REQUIRE(db->commit({{finding_for("c" + std::to_string(i)), {"file"}}}, {}, i).ok);
        }
        sql(file, "PRAGMA wal_checkpoint(TRUNCATE)");
        {
            std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
            f.seekp(4096);  // page 2: its b-tree header becomes garbage
            std::string junk(3000, '\x5a');
            f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
        }
        CHECK_FALSE(io::store::open(dir.path, err));
        CHECK(err.find("corrupt") != std::string::npos);
    }
    SECTION("a newer schema version") {
        { REQUIRE(io::store::open(dir.path, err)); }
        sql(file, "UPDATE meta SET value='99' WHERE key='schema_version'");
        CHECK_FALSE(io::store::open(dir.path, err));
        CHECK(err.find("newer") != std::string::npos);
    }
    SECTION("an unrelated SQLite database") {
        sql(file, "CREATE TABLE t(x)");
        CHECK_FALSE(io::store::open(dir.path, err));
        CHECK(err.find("no glasswatch schema") != std::string::npos);
    }
    SECTION("a zero-length file is damage (truncation), not a fresh start") {
        std::ofstream(file).close();
        CHECK_FALSE(io::store::open(dir.path, err));
        CHECK(err.find("empty (0 bytes)") != std::string::npos);
        CHECK(fs::file_size(file) == 0);  // left as it was
        CHECK_FALSE(io::store::open(dir.path, err, /*read_only=*/true));
    }
    SECTION("a new database is made complete and renamed into place") {
        std::ofstream(dir.path / "glasswatch.db.new") << "a crashed earlier attempt";
        { REQUIRE(io::store::open(dir.path, err)); }
        CHECK_FALSE(fs::exists(dir.path / "glasswatch.db.new"));
        CHECK(io::store::open(dir.path, err, /*read_only=*/true));
    }
    SECTION("a version 2 database migrates: every alert and row survives, rules = its rule") {
        {
            auto db = io::store::open(dir.path, err);
            REQUIRE(db);
            REQUIRE(db->commit({{finding_for("m1"), {"file", "pager"}},
                                {finding_for("m2", "breakglass_audit_target"), {"pager"}}},
                               {{"graph:signins", "c-7"}}, 10)
                        .ok);
            REQUIRE(db->mark_failed(finding_for("m1").a.id, "pager", 11, "HTTP 410"));
        }
        // Back to exactly what glasswatch 0.1 (schema 2) wrote: no rules column, no episodes,
        // and the plain hash-chained evidence table instead of the sealed chain.
        sql(file,
            "ALTER TABLE alerts DROP COLUMN rules; DROP TABLE sink_episodes; DROP TABLE chain;"
            "DELETE FROM meta WHERE key='evidence_key_id';"
            "CREATE TABLE evidence(seq INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, source TEXT "
            "NOT NULL, recorded_at INTEGER NOT NULL, raw BLOB NOT NULL, prev_hash TEXT NOT NULL, "
            "hash TEXT NOT NULL);"
            "INSERT INTO evidence(alert_id,source,recorded_at,raw,prev_hash,hash) SELECT alert_id,"
            "source,observed_at,'{\"legacy\":true}','p','h' FROM alerts ORDER BY alert_id;"
            "UPDATE meta SET value='2' WHERE key='schema_version'");
        fs::remove(dir.path / "evidence.key");
        fs::remove(dir.path / "evidence-verification.key");
        {
            auto ro = io::store::open(dir.path, err, /*read_only=*/true);  // a CLI look first
            REQUIRE(ro);
            CHECK(ro->deliveries_of(finding_for("m1").a.id).size() == 2);
        }
        auto db = io::store::open(dir.path, err);
        REQUIRE(db);
        CHECK(db->schema_version() == 4);
        CHECK(db->load_checkpoint("graph:signins") == "c-7");
        // The migration sealed what the file held and said so in the chain.
        std::map<std::string, int> kinds;
        for (const auto& e : db->evidence_entries(1))
            ++kinds[e.kind];
        CHECK(kinds["init"] == 1);
        CHECK(kinds["migration"] == 1);
        CHECK(kinds["alert"] == 2);
        CHECK(kinds["delivery"] == 1);  // m1's refused delivery to the pager
        CHECK(kinds["seal"] >= 1);
        CHECK(fs::exists(dir.path / "evidence-verification.key"));
        auto m1 = db->deliveries_of(finding_for("m1").a.id);
        REQUIRE(m1.size() == 2);
        CHECK(m1[0].a.rules == std::vector<std::string>{"breakglass_signin"});
        CHECK(m1[1].state == io::delivery_state::failed);
        auto m2 = db->deliveries_of(finding_for("m2", "breakglass_audit_target").a.id);
        REQUIRE(m2.size() == 1);
        CHECK(m2[0].a.rules == std::vector<std::string>{"breakglass_audit_target"});
        CHECK(db->verify_evidence({}).ok);
        // The same event again after the upgrade is still a duplicate, not a second page.
        auto again = db->commit({{finding_for("m1"), {"file"}}}, {}, 12);
        CHECK(again.duplicates == 1);
        CHECK(db->open_episodes().empty());
    }
    SECTION("no file yet: created (schema v4, the chain started) and reopens") {
        { REQUIRE(io::store::open(dir.path, err)); }
        auto db = io::store::open(dir.path, err);
        REQUIRE(db);
        CHECK(db->outbox_depth() == 0);
    }
}

TEST_CASE("an unwritable state directory is a clear error", "[store]") {
    if (::geteuid() == 0) {
        // root ignores permissions; a path under a regular file fails for everyone.
        temp_dir dir;
        std::ofstream(dir.path / "file") << "x";
        std::string err;
        CHECK_FALSE(io::store::open((dir.path / "file" / "sub").string(), err));
        CHECK_FALSE(err.empty());
    }
}

// Kill -9 a process that commits continuously, many times; after each crash the checkpoint
// must never cover a batch whose alerts are missing from the outbox.
TEST_CASE("crash consistency: the checkpoint never runs ahead of the outbox", "[store][crash]") {
    temp_dir dir;
    std::mt19937 rng(42);
    long next_batch = 1;
    int cycles = 25, crashed_mid_run = 0;
    for (int cycle = 0; cycle < cycles; ++cycle) {
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::dup2(ready[1], STDOUT_FILENO);
            std::string start = std::to_string(next_batch);
            ::execl(GLASSWATCH_CRASH_HELPER, GLASSWATCH_CRASH_HELPER, dir.path.c_str(),
                    start.c_str(), nullptr);
            ::_exit(127);
        }
        ::close(ready[1]);
        // Every fifth cycle kills at a random moment from exec on (possibly during open or the
        // first commit); the others wait for the first commit so that a slow build still
        // makes progress, then kill at a random moment while commits continue.
        if (cycle % 5 != 4) {
            pollfd p{ready[0], POLLIN, 0};
            REQUIRE(::poll(&p, 1, 30000) == 1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 80));
        ::kill(pid, SIGKILL);
        ::close(ready[0]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) ++crashed_mid_run;

        std::string err;
        auto db = io::store::open(dir.path, err);
        INFO(err);
        REQUIRE(db);
        auto cp = db->load_checkpoint("crash");
        if (!cp) continue;  // killed before the first commit
        long covered = std::stol(*cp);
        for (long b = 1; b <= covered; ++b)
            for (int i = 0; i < 5; ++i) {
                core::alert_context ctx{"t", "t"};
                std::string ev = "b" + std::to_string(b) + "-" + std::to_string(i);
                auto id = core::make_health_alert(ctx, "crash_test", core::severity::info, "crash",
                                                  ev, "", 0)
                              .id;
                auto rows = db->deliveries_of(id);
                INFO("batch " << b << " alert " << i);
                REQUIRE(rows.size() == 2);
            }
        const auto rep = db->verify_evidence({});
        INFO(rep.problem);
        CHECK(rep.ok);
        next_batch = covered + 1;
    }
    CHECK(crashed_mid_run == cycles);
    CHECK(next_batch > 1);
}

TEST_CASE("the file sink starts a new line after a fragment torn by a kill mid-append",
          "[store][file_sink]") {
    temp_dir dir;
    const std::string path = (dir.path / "alerts.jsonl").string();
    {
        std::ofstream torn(path, std::ios::binary);
        torn << "{\"rule\":\"breakglass_signin\",\"alertId\":\"a-1\",\"sms\":\"cut here";
    }
    io::outbox_row row;
    row.alert_id = "a-2";
    row.sink = "audit";
    row.a.id = "a-2";
    row.a.sms = "glasswatch: break-glass sign-in";
    row.a.detail_json = R"({"rule":"breakglass_signin"})";
    auto out = io::deliver_to_file(path, row);
    REQUIRE(out.ok);
    out = io::deliver_to_file(path, row);  // a clean tail gets no extra newline
    REQUIRE(out.ok);

    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].find("cut here") != std::string::npos);
    for (std::size_t i = 1; i < lines.size(); ++i) {
        auto j = nlohmann::json::parse(lines[i]);
        CHECK(j.at("alertId") == "a-2");
        CHECK(j.at("sink") == "audit");
    }
}
