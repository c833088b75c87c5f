// The watchlist compiled for matching: lower-cased ids and UPNs in hash sets.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/config/config.hpp"

namespace glasswatch::core {

class watchlist {
public:
    watchlist() = default;
    explicit watchlist(const watchlist_config& cfg);

    // Lookups take ids / UPNs in any case.
    const watched_account* account_by_id(std::string_view id) const;
    const watched_account* account_by_upn(std::string_view upn) const;
    bool is_group(std::string_view id) const;
    bool is_ca_policy(std::string_view id) const;
    // Any of the four above (one case-folding instead of four): the normalizer's probe.
    bool names_anything(std::string_view id_or_upn) const;

    const std::vector<watched_account>& accounts() const noexcept { return accounts_; }
    const std::vector<std::string>& groups() const noexcept { return groups_; }
    const std::vector<std::string>& ca_policies() const noexcept { return ca_policies_; }
    // Every watched GUID (accounts, groups, policies) and every UPN: what the prefilter scans for.
    std::vector<std::string> all_guids() const;
    std::vector<std::string> all_upns() const;

private:
    std::vector<watched_account> accounts_;
    std::vector<std::string> groups_, ca_policies_;
    std::unordered_map<std::string, std::size_t> by_id_, by_upn_;
    std::unordered_set<std::string> group_set_, policy_set_;
};

}  // namespace glasswatch::core
