#include "stack/wire/bytes.h"

namespace ustack::wire {

const char* to_string(ParseError e) {
    switch (e) {
        case ParseError::Truncated:
            return "truncated";
        case ParseError::BadLength:
            return "bad length";
        case ParseError::BadChecksum:
            return "bad checksum";
        case ParseError::BadVersion:
            return "bad version";
        case ParseError::Unsupported:
            return "unsupported";
        case ParseError::Malformed:
            return "malformed";
    }
    return "unknown parse error";
}

}  // namespace ustack::wire
