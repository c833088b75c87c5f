#include "core/detection/watchlist.hpp"

#include "core/base/json_text.hpp"

namespace glasswatch::core {

watchlist::watchlist(const watchlist_config& cfg) {
    for (const auto& a : cfg.accounts) {
        watched_account w{to_lower_ascii(a.object_id), to_lower_ascii(a.upn), a.label, a.type};
        if (w.label.empty()) w.label = !w.upn.empty() ? w.upn : w.object_id;
        by_id_.emplace(w.object_id, accounts_.size());
        if (!w.upn.empty()) by_upn_.emplace(w.upn, accounts_.size());
        accounts_.push_back(std::move(w));
    }
    for (const auto& g : cfg.groups) {
        groups_.push_back(to_lower_ascii(g));
        group_set_.insert(groups_.back());
    }
    for (const auto& p : cfg.ca_policies) {
        ca_policies_.push_back(to_lower_ascii(p));
        policy_set_.insert(ca_policies_.back());
    }
}

const watched_account* watchlist::account_by_id(std::string_view id) const {
    if (id.empty()) return nullptr;
    auto it = by_id_.find(to_lower_ascii(id));
    return it == by_id_.end() ? nullptr : &accounts_[it->second];
}

const watched_account* watchlist::account_by_upn(std::string_view upn) const {
    if (upn.empty()) return nullptr;
    auto it = by_upn_.find(to_lower_ascii(upn));
    return it == by_upn_.end() ? nullptr : &accounts_[it->second];
}

bool watchlist::is_group(std::string_view id) const {
    return !id.empty() && group_set_.count(to_lower_ascii(id)) != 0;
}

bool watchlist::is_ca_policy(std::string_view id) const {
    return !id.empty() && policy_set_.count(to_lower_ascii(id)) != 0;
}

bool watchlist::names_anything(std::string_view v) const {
    if (v.empty()) return false;
    const std::string k = to_lower_ascii(v);
    return by_id_.count(k) || by_upn_.count(k) || group_set_.count(k) || policy_set_.count(k);
}

std::vector<std::string> watchlist::all_guids() const {
    std::vector<std::string> out;
    for (const auto& a : accounts_)
        out.push_back(a.object_id);
    out.insert(out.end(), groups_.begin(), groups_.end());
    out.insert(out.end(), ca_policies_.begin(), ca_policies_.end());
    return out;
}

std::vector<std::string> watchlist::all_upns() const {
    std::vector<std::string> out;
    for (const auto& a : accounts_)
        if (!a.upn.empty()) out.push_back(a.upn);
    return out;
}

}  // namespace glasswatch::core
