// Child process for the store crash test: commits batches forever until SIGKILLed.
// Batch b holds 5 alerts (event ids "b<b>-<i>") and the checkpoint "crash" = b.
// One byte on stdout after the first commit tells the test that killing now lands mid-run,
// however slow the build (ASan) or the machine.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

#include "io/store/store.hpp"

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    std::string err;
    auto db = glasswatch::io::store::open(argv[1], err);
    if (!db) {
        std::fprintf(stderr, "%s\n", err.c_str());
        return 4;
    }
    long b = std::atol(argv[2]);
    glasswatch::core::alert_context ctx{"t", "t"};
    bool first = true;
    for (;; ++b) {
        std::vector<glasswatch::io::routed_finding> fs;
        for (int i = 0; i < 5; ++i) {
            std::string ev = "b" + std::to_string(b) + "-" + std::to_string(i);
            auto a = glasswatch::core::make_health_alert(ctx, "crash_test",
                                                         glasswatch::core::severity::info, "crash",
                                                         ev, "crash test " + ev, b);
            fs.push_back({{a, std::string(2000, 'r') + ev, "crash"}, {"file", "pager"}});
        }
        auto r = db->commit(fs, {{"crash", std::to_string(b)}}, b);
        if (!r.ok) {
            std::fprintf(stderr, "commit failed: %s\n", r.error.c_str());
            return 1;
        }
        if (first) {
            first = false;
            if (::write(STDOUT_FILENO, "c", 1) != 1) return 3;
        }
    }
}
