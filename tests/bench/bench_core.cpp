// bench_core: single-thread throughput of the glasswatch core (prefilter + split + confirm +
// normalize on hits) on a generated Event Hub stream, with its references measured in the
// same process run:
//
//   * read()+memchr over the input file in 1 MiB reads (the machine's single-core read
//     bandwidth, from the page cache) and memchr over the same bytes in memory;
//   * core::pipeline::process() per body, watching the watchlist GUIDs (the measured figure);
//   * a straightforward baseline: nlohmann_json DOM parse of every body, then a look at
//     properties.userId / initiatedBy.user.id / targetResources[].id (on a bounded prefix);
//   * the worst case: the tenant GUIDs of the stream are watched too, so every record is a
//     candidate and goes through the full parse, while the truth matches must stay the same.
//
// The input is read fully into memory before any timing; the pipeline and the baselines run
// from that buffer. With --truth, every generator "match" row (for a watched GUID) must raise
// a breakglass_* alert and nothing else may: a miss or a false alert exits 1. Timing is never
// asserted (the machine is shared); run.sh prints the ratios.
//
//   bench_core --input FILE --watchlist FILE [--truth FILE] [--mode all|pipeline|memchr|
//              nlohmann|worst] [--max-mb N] [--nlohmann-mb N] [--watch-count N] [--reps N]
//              [--json]
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/alerting/pipeline.hpp"
#include "core/config/config.hpp"
#include "core/detection/matcher.hpp"

namespace gw = glasswatch::core;

namespace {

// ---- options ----------------------------------------------------------------------------------

struct options {
    std::string input, watchlist, truth;
    std::string mode = "all";
    double max_mb = 0;            // 0 = whole file
    double nlohmann_mb = 50;      // prefix for the (slow) DOM baseline
    std::size_t watch_count = 0;  // 0 = exactly the watchlist file
    int reps = 3;
    bool json = false;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "bench_core: %s\n"
                 "usage: bench_core --input FILE --watchlist FILE [--truth FILE]\n"
                 "         [--mode all|pipeline|memchr|nlohmann|worst] [--max-mb N]\n"
                 "         [--nlohmann-mb N] [--watch-count N] [--reps N] [--json]\n",
                 why);
    std::exit(2);
}

options parse_args(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--input")
            o.input = next();
        else if (a == "--watchlist")
            o.watchlist = next();
        else if (a == "--truth")
            o.truth = next();
        else if (a == "--mode")
            o.mode = next();
        else if (a == "--max-mb")
            o.max_mb = std::atof(next().c_str());
        else if (a == "--nlohmann-mb")
            o.nlohmann_mb = std::atof(next().c_str());
        else if (a == "--watch-count")
            o.watch_count = static_cast<std::size_t>(std::atoll(next().c_str()));
        else if (a == "--reps")
            o.reps = std::max(1, std::atoi(next().c_str()));
        else if (a == "--json")
            o.json = true;
        else if (a == "-h" || a == "--help")
            usage("help");
        else
            usage(("unknown argument " + a).c_str());
    }
    if (o.input.empty() || o.watchlist.empty()) usage("--input and --watchlist are required");
    static const std::set<std::string> modes{"all", "pipeline", "memchr", "nlohmann", "worst"};
    if (!modes.count(o.mode)) usage("unknown --mode");
    return o;
}

// ---- small helpers ----------------------------------------------------------------------------

std::string lower(std::string_view s) {
    std::string r(s);
    for (char& c : r)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

bool guid_shaped(std::string_view s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < 36; ++i) {
        bool hy = i == 8 || i == 13 || i == 18 || i == 23;
        if (hy ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct timing {
    double wall = 0;  // seconds
    double cpu = 0;   // thread CPU seconds: cpu/wall < 1 means another process took the core
};

template <class F>
timing timed(F&& f) {
    auto w0 = std::chrono::steady_clock::now();
    double c0 = thread_cpu_seconds();
    f();
    double c1 = thread_cpu_seconds();
    auto w1 = std::chrono::steady_clock::now();
    return {std::chrono::duration<double>(w1 - w0).count(), c1 - c0};
}

long max_rss_kib() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;  // KiB on Linux
}

// A figure measured `reps` times: the median by wall time is reported.
struct figure {
    bool measured = false;
    std::size_t bytes = 0;
    std::vector<timing> runs;
    timing median() const {
        std::vector<timing> r = runs;
        std::sort(r.begin(), r.end(),
                  [](const timing& a, const timing& b) { return a.wall < b.wall; });
        return r.empty() ? timing{} : r[r.size() / 2];
    }
    double mbps() const {
        timing m = median();
        return m.wall > 0 ? static_cast<double>(bytes) / 1e6 / m.wall : 0;
    }
    double cpu_share() const {
        timing m = median();
        return m.wall > 0 ? m.cpu / m.wall : 0;
    }
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

// ---- input ------------------------------------------------------------------------------------

// Reads the file (or its first `limit` bytes, cut back to a line end) into memory.
std::string load_input(const std::string& path, std::size_t limit, bool& truncated) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) {
        std::fprintf(stderr, "bench_core: cannot open %s: %s\n", path.c_str(),
                     std::strerror(errno));
        std::exit(2);
    }
    struct stat st {};
    fstat(fd, &st);
    auto size = static_cast<std::size_t>(st.st_size);
    truncated = limit != 0 && limit < size;
    std::size_t want = truncated ? limit : size;
    std::string buf(want, '\0');
    std::size_t got = 0;
    while (got < want) {
        ssize_t n = ::read(fd, buf.data() + got, want - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    buf.resize(got);
    if (truncated) {
        auto nl = buf.rfind('\n');
        buf.resize(nl == std::string::npos ? 0 : nl + 1);
    }
    return buf;
}

std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t b = 0;
    while (b < s.size()) {
        const void* q = std::memchr(s.data() + b, '\n', s.size() - b);
        std::size_t e =
            q ? static_cast<std::size_t>(static_cast<const char*>(q) - s.data()) : s.size();
        if (e > b) out.push_back(s.substr(b, e - b));
        b = e + 1;
    }
    return out;
}

std::vector<std::string> load_watchlist(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        std::fprintf(stderr, "bench_core: cannot read watchlist %s\n", path.c_str());
        std::exit(2);
    }
    std::vector<std::string> out;
    std::string line;
    while (std::getline(in, line)) {
        std::string_view s(line);
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
            s.remove_prefix(1);
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
            s.remove_suffix(1);
        if (s.empty() || s.front() == '#') continue;
        if (s.front() == '{') s.remove_prefix(1);
        if (!s.empty() && s.back() == '}') s.remove_suffix(1);
        if (!guid_shaped(s)) {
            std::fprintf(stderr, "bench_core: watchlist line is not a GUID: %s\n", line.c_str());
            std::exit(2);
        }
        out.push_back(lower(s));
    }
    return out;
}

std::string random_guid(std::mt19937_64& rng) {
    static const char* hexd = "0123456789abcdef";
    std::uint64_t a = rng(), b = rng();
    std::string g;
    for (int i = 0; i < 32; ++i) {
        std::uint64_t w = i < 16 ? a : b;
        g += hexd[(w >> (4 * (i % 16))) & 0xF];
        if (i == 7 || i == 11 || i == 15 || i == 19) g += '-';
    }
    g[14] = '4';
    g[19] = "89ab"[b & 3];
    return g;
}

// ---- truth ------------------------------------------------------------------------------------

struct truth_row {
    std::string kind, id, category, field, variant, guid;
};

std::vector<truth_row> load_truth(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        std::fprintf(stderr, "bench_core: cannot read truth %s\n", path.c_str());
        std::exit(2);
    }
    std::vector<truth_row> out;
    std::string line;
    bool header = true;
    while (std::getline(in, line)) {
        if (header) {
            header = false;
            if (line.rfind("kind\t", 0) == 0) continue;
        }
        std::vector<std::string> f;
        std::size_t b = 0;
        for (;;) {
            auto t = line.find('\t', b);
            f.push_back(line.substr(b, t == std::string::npos ? std::string::npos : t - b));
            if (t == std::string::npos) break;
            b = t + 1;
        }
        if (f.size() < 6) continue;
        out.push_back({f[0], f[1], f[2], f[3], f[4], lower(f[5])});
    }
    return out;
}

// The string values of every `"id":"..."` in the input: tells which truth rows lie inside the
// bytes actually loaded (with --max-mb) and catches a truth file that belongs to another stream.
std::unordered_set<std::string> ids_present(std::string_view s,
                                            const std::unordered_set<std::string>& wanted) {
    std::unordered_set<std::string> found;
    static constexpr std::string_view pat = "\"id\":\"";
    std::size_t pos = 0;
    while (found.size() < wanted.size()) {
        auto at = s.find(pat, pos);
        if (at == std::string_view::npos) break;
        std::size_t b = at + pat.size();
        auto e = s.find('"', b);
        if (e == std::string_view::npos) break;
        std::string v(s.substr(b, e - b));
        if (wanted.count(v)) found.insert(std::move(v));
        pos = e;
    }
    return found;
}

// Distinct tenantId values of the stream (first `scan` bytes): watching them makes every record
// a prefilter candidate (they are in every record, never in an identity field).
std::vector<std::string> tenant_guids(std::string_view s, std::size_t scan) {
    std::set<std::string> t;
    static constexpr std::string_view pat = "\"tenantId\":\"";
    s = s.substr(0, std::min(scan, s.size()));
    std::size_t pos = 0;
    for (;;) {
        auto at = s.find(pat, pos);
        if (at == std::string_view::npos) break;
        std::size_t b = at + pat.size();
        if (b + 36 <= s.size() && guid_shaped(s.substr(b, 36))) t.insert(lower(s.substr(b, 36)));
        pos = b;
    }
    return {t.begin(), t.end()};
}

// ---- references -------------------------------------------------------------------------------

std::size_t memchr_count(const char* p, std::size_t n) {
    std::size_t lines = 0;
    const char* end = p + n;
    while (p < end) {
        const void* q = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
        if (!q) break;
        ++lines;
        p = static_cast<const char*>(q) + 1;
    }
    return lines;
}

// read() in 1 MiB chunks + memchr over each, for exactly the first `bytes` bytes of the file.
std::size_t read_memchr_pass(const std::string& path, std::size_t bytes) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return 0;
    static std::vector<char> buf(1 << 20);
    std::size_t total = 0, lines = 0;
    while (total < bytes) {
        ssize_t n = ::read(fd, buf.data(), std::min(buf.size(), bytes - total));
        if (n <= 0) break;
        lines += memchr_count(buf.data(), static_cast<std::size_t>(n));
        total += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return lines;
}

// ---- the glasswatch core ----------------------------------------------------------------------

gw::config make_config(const std::vector<std::string>& guids) {
    gw::config c;
    c.tenant_id = "0badc0de-0000-4000-8000-00000000b0b0";  // not in any watchlist
    c.tenant_name = "bench";
    for (const auto& g : guids)
        c.watch.accounts.push_back({g, "", ""});
    gw::sink_config s;
    s.name = "x";
    s.kind = gw::sink_kind::file;
    s.path = "/dev/null";
    c.sinks.push_back(s);
    return c;
}

struct core_run {
    timing t;
    std::vector<double> body_us;
    std::map<std::string, std::set<std::string>> ids_by_rule;  // breakglass_* rule -> event ids
    std::set<std::string> alerted_ids;                         // distinct, breakglass_* only
    std::vector<std::string> other_alerts;                     // any other rule: "rule: summary"
    std::size_t findings = 0;
    std::size_t records_in_candidate_bodies = 0;
    gw::pipeline_stats stats;
};

core_run run_core(const std::vector<std::string_view>& bodies,
                  const std::vector<std::string>& guids, bool latencies) {
    gw::config cfg = make_config(guids);
    gw::pipeline p(cfg);
    gw::body_origin origin;
    origin.source = "eventhub";
    const gw::micros now = 1717200000000000;
    core_run r;
    if (latencies) r.body_us.reserve(bodies.size());
    std::vector<gw::process_output> outs;  // findings kept out of the timed loop's way
    r.t = timed([&] {
        for (auto b : bodies) {
            if (latencies) {
                auto t0 = std::chrono::steady_clock::now();
                gw::process_output out = p.process(b, origin, now);
                auto t1 = std::chrono::steady_clock::now();
                r.body_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
                r.records_in_candidate_bodies += out.records;
                if (!out.findings.empty()) outs.push_back(std::move(out));
            } else {
                gw::process_output out = p.process(b, origin, now);
                r.records_in_candidate_bodies += out.records;
                if (!out.findings.empty()) outs.push_back(std::move(out));
            }
        }
    });
    for (const auto& out : outs) {
        for (const auto& f : out.findings) {
            ++r.findings;
            const std::string& rule = f.a.rule;
            if (rule == gw::rules::breakglass_signin || rule == gw::rules::breakglass_audit_actor ||
                rule == gw::rules::breakglass_audit_target) {
                r.ids_by_rule[rule].insert(f.a.event_id);
                r.alerted_ids.insert(f.a.event_id);
            } else {
                r.other_alerts.push_back(rule + ": " + f.a.summary);
            }
        }
    }
    r.stats = p.stats();
    return r;
}

// ---- the straightforward baseline -------------------------------------------------------------

struct dom_run {
    timing t;
    std::size_t records = 0, parse_errors = 0;
    std::set<std::string> matched_ids;
};

dom_run run_nlohmann(const std::vector<std::string_view>& bodies,
                     const std::unordered_set<std::string>& watched) {
    dom_run r;
    auto is_watched = [&](const nlohmann::json& obj, const char* key) {
        auto it = obj.find(key);
        return it != obj.end() && it->is_string() &&
               watched.count(lower(it->get_ref<const std::string&>()));
    };
    r.t = timed([&] {
        for (auto b : bodies) {
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(b);
            } catch (const nlohmann::json::exception&) {
                ++r.parse_errors;
                continue;
            }
            // An Event Hub body {"records":[...]}, or one record per line (--per-record).
            nlohmann::json single = nlohmann::json::array();
            const nlohmann::json* recs = nullptr;
            if (auto it = j.find("records"); it != j.end() && it->is_array()) {
                recs = &*it;
            } else if (j.is_object()) {
                single.push_back(std::move(j));
                recs = &single;
            } else {
                continue;
            }
            for (const auto& rec : *recs) {
                ++r.records;
                if (!rec.is_object()) continue;
                auto pit = rec.find("properties");
                if (pit == rec.end() || !pit->is_object()) continue;
                const auto& props = *pit;
                bool hit = is_watched(props, "userId");
                auto ib = props.find("initiatedBy");
                if (!hit && ib != props.end() && ib->is_object()) {
                    auto u = ib->find("user");
                    hit = u != ib->end() && u->is_object() && is_watched(*u, "id");
                }
                auto tr = props.find("targetResources");
                if (!hit && tr != props.end() && tr->is_array()) {
                    for (const auto& t : *tr)
                        if (t.is_object() && is_watched(t, "id")) hit = true;
                }
                if (hit) {
                    auto id = props.find("id");
                    r.matched_ids.insert(id != props.end() && id->is_string()
                                             ? id->get<std::string>()
                                             : std::string("?"));
                }
            }
        }
    });
    return r;
}

// ---- checking ---------------------------------------------------------------------------------

struct check_result {
    std::size_t expected = 0, found = 0, decoys = 0;
    std::vector<std::string> missed;  // "id (category, field, variant, guid)"
    std::vector<std::string> false_alerts;
    bool ok() const { return missed.empty() && false_alerts.empty(); }
};

check_result check_core(const core_run& r, const std::unordered_map<std::string, truth_row>& expect,
                        const std::unordered_map<std::string, truth_row>& decoys, bool have_truth) {
    check_result c;
    c.expected = expect.size();
    c.decoys = decoys.size();
    for (const auto& [id, row] : expect) {
        // Sign-in ids are GUIDs the core lower-cases; audit ids ("Directory_...") are kept as is.
        if (r.alerted_ids.count(id) || r.alerted_ids.count(lower(id)))
            ++c.found;
        else
            c.missed.push_back(id + " (" + row.category + ", " + row.field + ", " + row.variant +
                               ", watched " + row.guid + ")");
    }
    for (const auto& id : r.alerted_ids) {
        if (!have_truth) break;
        if (expect.count(id)) continue;
        auto d = decoys.find(id);
        c.false_alerts.push_back(id + (d != decoys.end() ? " (DECOY: " + d->second.field + ")"
                                                         : std::string(" (not in truth)")));
    }
    for (const auto& o : r.other_alerts)
        c.false_alerts.push_back(o);
    return c;
}

void print_check(const char* what, const check_result& c) {
    std::printf(
        "  %-28s expected %zu, found %zu, missed %zu, false alerts %zu (%zu decoys in input)\n",
        what, c.expected, c.found, c.missed.size(), c.false_alerts.size(), c.decoys);
    for (const auto& m : c.missed)
        std::printf("    MISSED %s\n", m.c_str());
    for (const auto& f : c.false_alerts)
        std::printf("    FALSE ALERT %s\n", f.c_str());
}

std::string jnum(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}

}  // namespace

int main(int argc, char** argv) {
    options opt = parse_args(argc, argv);
    const bool all = opt.mode == "all";

    // -- load everything before timing anything
    bool truncated = false;
    std::string input = load_input(
        opt.input, opt.max_mb > 0 ? static_cast<std::size_t>(opt.max_mb * 1e6) : 0, truncated);
    std::vector<std::string_view> bodies = split_lines(input);
    if (bodies.empty()) {
        std::fprintf(stderr, "bench_core: empty input\n");
        return 2;
    }

    std::vector<std::string> file_watch = load_watchlist(opt.watchlist);
    std::vector<std::string> watch = file_watch;
    if (opt.watch_count) {
        if (watch.size() > opt.watch_count) watch.resize(opt.watch_count);
        std::mt19937_64 rng(0x91a55ULL);
        std::set<std::string> have(watch.begin(), watch.end());
        while (watch.size() < opt.watch_count) {
            std::string g = random_guid(rng);
            if (have.insert(g).second) watch.push_back(g);
        }
    }
    const std::size_t from_file = std::min(file_watch.size(), watch.size());
    std::unordered_set<std::string> watch_set(watch.begin(), watch.end());

    // Truth rows for the GUIDs watched in this run, restricted to the bytes loaded.
    std::unordered_map<std::string, truth_row> expect, decoys;
    std::size_t truth_outside = 0;
    bool truth_ok = true;
    if (!opt.truth.empty()) {
        std::unordered_set<std::string> wanted;
        std::vector<truth_row> rows = load_truth(opt.truth);
        for (const auto& r : rows)
            wanted.insert(r.id);
        auto present = ids_present(input, wanted);
        for (const auto& r : rows) {
            if (!present.count(r.id)) {
                ++truth_outside;
                continue;
            }
            if (!watch_set.count(r.guid)) continue;
            (r.kind == "match" ? expect : decoys).emplace(r.id, r);
        }
        if (truth_outside && !truncated) {
            std::printf("ERROR: %zu truth ids do not occur in the input: wrong --truth file?\n",
                        truth_outside);
            truth_ok = false;
        }
    }

    const long rss_loaded = max_rss_kib();
    std::printf("glasswatch bench_core: one thread; input read fully into memory before timing\n");
    std::printf("input   %s: %.1f MB%s, %zu bodies\n", opt.input.c_str(),
                static_cast<double>(input.size()) / 1e6, truncated ? " (prefix, --max-mb)" : "",
                bodies.size());
    std::printf("watch   %zu GUIDs (%zu from %s%s)\n", watch.size(), from_file,
                opt.watchlist.c_str(), watch.size() > from_file ? ", rest random padding" : "");
    if (!opt.truth.empty())
        std::printf(
            "truth   %zu expected matches and %zu decoys for these GUIDs in the loaded bytes%s\n",
            expect.size(), decoys.size(), truncated ? " (rows beyond the prefix ignored)" : "");

    figure f_read, f_mem, f_core, f_dom, f_worst;
    bool counts_ok = truth_ok;
    std::size_t lines = bodies.size();

    // -- (a) references and (b) the core, interleaved per repetition so that a burst of load
    // from another process hits the reference and the core alike
    const bool refs = all || opt.mode == "memchr" || opt.mode == "pipeline";
    const bool do_core = all || opt.mode == "pipeline";
    core_run core;
    check_result core_check;
    long rss_core = 0;
    f_read.measured = f_mem.measured = refs;
    f_read.bytes = f_mem.bytes = f_core.bytes = input.size();
    f_core.measured = do_core;
    // Untimed warm-up: the read buffer's first-touch page faults are not bandwidth.
    if (refs) read_memchr_pass(opt.input, std::min<std::size_t>(input.size(), 8u << 20));
    for (int i = 0; (refs || do_core) && i < opt.reps; ++i) {
        if (refs) {
            std::size_t n = 0;
            f_read.runs.push_back(timed([&] { n = read_memchr_pass(opt.input, input.size()); }));
            // Blank lines are not bodies; only fewer line ends than bodies would be wrong.
            if (n < lines) std::printf("WARNING: read()+memchr saw %zu line ends\n", n);
            f_mem.runs.push_back(timed([&] { n = memchr_count(input.data(), input.size()); }));
            if (n < lines) std::printf("WARNING: memchr saw %zu line ends\n", n);
        }
        if (do_core) {
            core_run r = run_core(bodies, watch, true);
            f_core.runs.push_back(r.t);
            if (i == 0) {
                core = std::move(r);
            } else if (r.alerted_ids != core.alerted_ids) {
                std::printf("ERROR: repetition %d alerted on a different set of events\n", i);
                counts_ok = false;
            }
        }
    }
    if (do_core) {
        rss_core = max_rss_kib();
        core_check = check_core(core, expect, decoys, !opt.truth.empty());
        counts_ok = counts_ok && core_check.ok();
    }

    // -- (d) worst case: every record is a candidate
    core_run worst;
    check_result worst_check;
    std::vector<std::string> tenants;
    if (all || opt.mode == "worst") {
        tenants = tenant_guids(input, 64u << 20);
        std::vector<std::string> wwatch = watch;
        for (const auto& t : tenants)
            if (!watch_set.count(t)) wwatch.push_back(t);
        f_worst.measured = true;
        f_worst.bytes = input.size();
        for (int i = 0; i < opt.reps; ++i) {
            core_run r = run_core(bodies, wwatch, true);
            f_worst.runs.push_back(r.t);
            if (i == 0) worst = std::move(r);
        }
        worst_check = check_core(worst, expect, decoys, !opt.truth.empty());
        counts_ok = counts_ok && worst_check.ok();
    }

    // -- (c) the nlohmann DOM baseline on a prefix
    dom_run dom;
    std::size_t dom_bodies = 0;
    if (all || opt.mode == "nlohmann") {
        std::vector<std::string_view> prefix;
        std::size_t limit = static_cast<std::size_t>(opt.nlohmann_mb * 1e6);
        for (auto b : bodies) {
            if (f_dom.bytes >= limit) break;
            prefix.push_back(b);
            f_dom.bytes += b.size() + 1;
        }
        dom_bodies = prefix.size();
        f_dom.measured = true;
        for (int i = 0; i < opt.reps; ++i) {
            dom_run r = run_nlohmann(prefix, watch_set);
            f_dom.runs.push_back(r.t);
            if (i == 0) dom = std::move(r);
        }
    }

    // -- report
    const double read_mbps = f_read.mbps(), mem_mbps = f_mem.mbps(), core_mbps = f_core.mbps(),
                 dom_mbps = f_dom.mbps(), worst_mbps = f_worst.mbps();
    auto ratio = [](double a, double b) { return b > 0 && a > 0 ? a / b : 0.0; };
    std::printf("\nmedian of %d repetitions; MB = 1e6 bytes; cpu = thread CPU time / wall time\n",
                opt.reps);
    std::printf("  %-44s %10s %6s\n", "measure", "MB/s", "cpu");
    auto row = [](const char* name, const figure& f) {
        if (f.measured)
            std::printf("  %-44s %10.1f %5.0f%%\n", name, f.mbps(), 100 * f.cpu_share());
    };
    row("read()+memchr, file in 1 MiB reads", f_read);
    row("memchr, in memory", f_mem);
    row("core pipeline, in memory", f_core);
    row("core pipeline, worst case (all candidates)", f_worst);
    char domname[96];
    std::snprintf(domname, sizeof domname, "nlohmann DOM baseline (first %.0f MB)",
                  static_cast<double>(f_dom.bytes) / 1e6);
    row(domname, f_dom);

    std::printf("\nratios\n");
    if (f_core.measured && f_read.measured) {
        std::printf("  core / read()+memchr      %8.3f   (target >= 0.40: %s)\n",
                    ratio(core_mbps, read_mbps),
                    ratio(core_mbps, read_mbps) >= 0.40 ? "met" : "NOT met");
        std::printf("  core / memchr in memory   %8.3f\n", ratio(core_mbps, mem_mbps));
    }
    if (f_core.measured && f_dom.measured)
        std::printf("  core / nlohmann DOM       %8.1fx  (target >= 20x: %s)\n",
                    ratio(core_mbps, dom_mbps),
                    ratio(core_mbps, dom_mbps) >= 20 ? "met" : "NOT met");
    if (f_worst.measured && f_dom.measured)
        std::printf("  worst / nlohmann DOM      %8.1fx  (target >= 10x: %s)\n",
                    ratio(worst_mbps, dom_mbps),
                    ratio(worst_mbps, dom_mbps) >= 10 ? "met" : "NOT met");
    if (f_worst.measured && f_read.measured)
        std::printf("  worst / read()+memchr     %8.3f\n", ratio(worst_mbps, read_mbps));

    if (f_core.measured) {
        const auto& s = core.stats;
        std::printf(
            "\ncore: %llu bodies, %llu candidate bodies, %llu candidate records, %llu events, "
            "%llu rule hits; per-body latency p50 %.1f us, p99 %.1f us, max %.1f us\n",
            static_cast<unsigned long long>(s.bodies),
            static_cast<unsigned long long>(s.candidate_bodies),
            static_cast<unsigned long long>(s.candidate_records),
            static_cast<unsigned long long>(s.events), static_cast<unsigned long long>(s.matches),
            percentile(core.body_us, 0.5), percentile(core.body_us, 0.99),
            percentile(core.body_us, 1.0));
        std::printf(
            "      max RSS %ld KiB (input buffer included), core peak above loaded input %ld KiB\n",
            rss_core, rss_core - rss_loaded);
    }
    if (f_worst.measured) {
        const auto& s = worst.stats;
        std::printf(
            "worst: watching %zu tenant GUIDs too; %llu of %llu bodies and %llu of %zu records "
            "were candidates (%.1f%%); p50 %.1f us, p99 %.1f us per body\n",
            tenants.size(), static_cast<unsigned long long>(s.candidate_bodies),
            static_cast<unsigned long long>(s.bodies),
            static_cast<unsigned long long>(s.candidate_records), worst.records_in_candidate_bodies,
            worst.records_in_candidate_bodies
                ? 100.0 * static_cast<double>(s.candidate_records) /
                      static_cast<double>(worst.records_in_candidate_bodies)
                : 0.0,
            percentile(worst.body_us, 0.5), percentile(worst.body_us, 0.99));
    }
    if (f_dom.measured)
        std::printf(
            "nlohmann: %zu bodies, %zu records, %zu matches, %zu parse errors in the prefix\n",
            dom_bodies, dom.records, dom.matched_ids.size(), dom.parse_errors);

    // The baseline must agree with the truth on its prefix (it is a reference, not the product).
    if (f_dom.measured && !opt.truth.empty()) {
        for (const auto& id : dom.matched_ids) {
            if (!expect.count(id)) {
                std::printf("  baseline FALSE MATCH %s\n", id.c_str());
                counts_ok = false;
            }
        }
        if (f_core.measured) {
            for (const auto& id : dom.matched_ids)
                if (!core.alerted_ids.count(id)) {
                    std::printf("  core MISSED %s that the baseline found\n", id.c_str());
                    counts_ok = false;
                }
        }
    }

    if (!opt.truth.empty()) {
        std::printf("\ntruth check\n");
        if (f_core.measured) print_check("core pipeline:", core_check);
        if (f_worst.measured) print_check("core pipeline, worst case:", worst_check);
        if (f_core.measured)
            for (const auto& [rule, ids] : core.ids_by_rule)
                std::printf("    %-26s %zu events\n", rule.c_str(), ids.size());
    }
    std::printf("\nresult: %s\n", counts_ok ? "counts OK" : "COUNT CHECK FAILED");

    if (opt.json) {
        std::string j = "{\"bench\":\"core\",\"mode\":\"" + opt.mode + "\"";
        auto add = [&j](const char* k, double v) { j += std::string(",\"") + k + "\":" + jnum(v); };
        add("input_bytes", static_cast<double>(input.size()));
        add("bodies", static_cast<double>(bodies.size()));
        add("watch_count", static_cast<double>(watch.size()));
        add("reps", opt.reps);
        if (f_read.measured) add("read_memchr_mbps", read_mbps);
        if (f_read.measured) add("read_memchr_cpu_share", f_read.cpu_share());
        if (f_mem.measured) add("memchr_mbps", mem_mbps);
        if (f_core.measured) {
            add("core_mbps", core_mbps);
            add("core_cpu_share", f_core.cpu_share());
            add("core_p50_body_us", percentile(core.body_us, 0.5));
            add("core_p99_body_us", percentile(core.body_us, 0.99));
            add("max_rss_kib", static_cast<double>(rss_core));
            add("core_rss_above_input_kib", static_cast<double>(rss_core - rss_loaded));
            add("expected", static_cast<double>(core_check.expected));
            add("decoys", static_cast<double>(core_check.decoys));
            add("found", static_cast<double>(core_check.found));
            add("missed", static_cast<double>(core_check.missed.size()));
            add("false_alerts", static_cast<double>(core_check.false_alerts.size()));
        }
        if (f_worst.measured) {
            add("worst_mbps", worst_mbps);
            add("worst_cpu_share", f_worst.cpu_share());
            add("worst_candidate_records", static_cast<double>(worst.stats.candidate_records));
            add("worst_records", static_cast<double>(worst.records_in_candidate_bodies));
            add("worst_missed", static_cast<double>(worst_check.missed.size()));
            add("worst_false_alerts", static_cast<double>(worst_check.false_alerts.size()));
        }
        if (f_dom.measured) {
            add("nlohmann_mbps", dom_mbps);
            add("nlohmann_cpu_share", f_dom.cpu_share());
            add("nlohmann_bytes", static_cast<double>(f_dom.bytes));
            add("nlohmann_records", static_cast<double>(dom.records));
            add("nlohmann_matches", static_cast<double>(dom.matched_ids.size()));
        }
        j += std::string(",\"counts_ok\":") + (counts_ok ? "true" : "false") + "}";
        std::printf("JSON %s\n", j.c_str());
    }
    std::fflush(stdout);
    return counts_ok ? 0 : 1;
}
