// The complete example of the journey language contract (docs: DSL.md), shared by the parser
// tests so they all read the same text a marketer would.
#ifndef ITINERA_TESTS_DSL_EXAMPLE_JOURNEY_H_
#define ITINERA_TESTS_DSL_EXAMPLE_JOURNEY_H_

namespace itinera::dsl::testing {

inline constexpr char kExampleJourney[] = R"journey(# Test-drive lead follow-up (car dealer)
journey test_drive_followup "Test-drive lead follow-up" {
  version 2
  enter when event "form_submitted" where event.form == "test_drive"
  re_enter after 90d
  timezone customer.timezone or "Europe/Prague"
  quiet_hours 21:00 to 08:00
  frequency_cap email 3 per 7d
  holdout 5%
  exit when event "purchase"
  goal "test_drive_booked" when event "test_drive_done" within 14d

  step confirm {
    assign owner from team "prague_sales" by round_robin
    send email "test_drive_confirmation" as offer
    then wait_for_open
  }

  step wait_for_open {
    wait up to 3d for event "email_opened" where event.message == offer
    when received then hot_lead
    when timed_out then reminder
  }

  step hot_lead {
    alert owner "hot_lead_alert"
    set customer.lead_stage = "hot"
    set customer.score = customer.score + 20
    if has customer.phone and customer.consent.sms then sms_nudge else done
  }

  step sms_nudge {
    wait until 10:00 on mon, tue, wed, thu, fri
    send sms "test_drive_sms"
    then done
  }

  step reminder {
    send email "offer_reminder"
    split 50% -> done, 50% -> second_chance
  }

  step second_chance {
    wait 2d
    webhook "crm_task" 
    then done
  }

  step done { exit "completed" }
}
)journey";

}  // namespace itinera::dsl::testing

#endif  // ITINERA_TESTS_DSL_EXAMPLE_JOURNEY_H_
