// Names the calling thread, so that `top -H`, `ps -L`, perf and gdb tell the daemon's threads
// apart ("api", "processor", "commit", "lane sms", "send sms", ...).
#ifndef ITINERA_UTIL_THREAD_NAME_H_
#define ITINERA_UTIL_THREAD_NAME_H_

#include <string_view>

namespace itinera {

// Linux keeps 15 bytes of a thread's name; a longer name is cut there. Best effort: a failure
// changes nothing else.
void NameThread(std::string_view name);

}  // namespace itinera

#endif  // ITINERA_UTIL_THREAD_NAME_H_
