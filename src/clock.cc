#include "converge/clock.h"

namespace converge {

RealClock* RealClock::Default() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace converge
