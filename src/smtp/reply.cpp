#include "mailroom/smtp/reply.hpp"

#include <cstdio>

namespace mailroom::smtp {

void reply::append_wire(std::string& out, bool enhanced_codes) const {
  char prefix[24];
  int code3 = (code >= 200 && code <= 599) ? code : 451;  // a reply code out of range is a bug; fail safe
  bool with_enh = enhanced_codes && enhanced[0] != 0;
  std::string_view rest = text;
  for (;;) {
    auto nl = rest.find('\n');
    auto line = rest.substr(0, nl);
    bool last = nl == std::string_view::npos;
    int n = with_enh ? std::snprintf(prefix, sizeof prefix, "%03d%c%u.%u.%u ", code3, last ? ' ' : '-', enhanced[0],
                                     enhanced[1], enhanced[2])
                     : std::snprintf(prefix, sizeof prefix, "%03d%c", code3, last ? ' ' : '-');
    out.append(prefix, static_cast<std::size_t>(n));
    for (char c : line) out += (static_cast<unsigned char>(c) < 32 || c == 127) ? ' ' : c;
    out += "\r\n";
    if (last) break;
    rest.remove_prefix(nl + 1);
  }
}

std::string reply::wire(bool enhanced_codes) const {
  std::string out;
  append_wire(out, enhanced_codes);
  return out;
}

namespace replies {
reply ok(std::string text) { return {250, {2, 0, 0}, std::move(text)}; }
reply sender_ok() { return {250, {2, 1, 0}, "Ok"}; }
reply recipient_ok() { return {250, {2, 1, 5}, "Ok"}; }
reply queued(std::string_view id) { return {250, {2, 0, 0}, "Ok: queued as " + std::string(id)}; }
reply start_data() { return {354, {0, 0, 0}, "End data with <CR><LF>.<CR><LF>"}; }
reply closing(std::string_view host) { return {221, {2, 0, 0}, std::string(host) + " Bye"}; }
reply service_unavailable(std::string_view host, std::string_view why) {
  return {421, {4, 3, 2}, std::string(host) + " " + std::string(why)};
}
reply local_error() { return {451, {4, 3, 0}, "Local error in processing, try again later"}; }
reply insufficient_storage() { return {452, {4, 3, 1}, "Insufficient system storage"}; }
reply too_many_recipients() { return {452, {4, 5, 3}, "Too many recipients"}; }
reply syntax_error(std::string text) { return {500, {5, 5, 2}, std::move(text)}; }
reply line_too_long() { return {500, {5, 5, 6}, "Line too long"}; }
reply bad_arguments(std::string text) { return {501, {5, 5, 4}, std::move(text)}; }
reply not_implemented(std::string text) { return {502, {5, 5, 1}, std::move(text)}; }
reply bad_sequence(std::string text) { return {503, {5, 5, 1}, std::move(text)}; }
reply param_not_implemented(std::string text) { return {504, {5, 5, 4}, std::move(text)}; }
reply mailbox_unavailable(std::string text) { return {550, {5, 1, 1}, std::move(text)}; }
reply message_too_big() { return {552, {5, 3, 4}, "Message size exceeds fixed limit"}; }
reply transaction_failed(std::string text) { return {554, {5, 0, 0}, std::move(text)}; }
reply unrecognized_parameter(std::string text) { return {555, {5, 5, 4}, std::move(text)}; }
reply auth_required() { return {530, {5, 7, 0}, "Authentication required"}; }
reply encryption_required() { return {530, {5, 7, 0}, "Must issue a STARTTLS command first"}; }
reply auth_succeeded() { return {235, {2, 7, 0}, "Authentication successful"}; }
reply auth_failed() { return {535, {5, 7, 8}, "Authentication credentials invalid"}; }
reply auth_plaintext_forbidden() { return {538, {5, 7, 11}, "Encryption required for requested authentication mechanism"}; }
}  // namespace replies

}  // namespace mailroom::smtp
