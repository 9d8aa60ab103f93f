-- =============================================================================
-- Names and titles that reach other people's inboxes hold no control characters
-- (rows from before are not re-checked; the API refuses them at the door).
-- =============================================================================
alter table public.users add constraint users_display_name_is_text
  check (display_name !~ '[[:cntrl:]]') not valid;
alter table public.goals add constraint goals_title_is_text
  check (title !~ '[[:cntrl:]]') not valid;
alter table public.contacts add constraint contacts_name_is_text
  check (name !~ '[[:cntrl:]]') not valid;
