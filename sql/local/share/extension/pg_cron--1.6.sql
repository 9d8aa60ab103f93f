-- Local stand-in for pg_cron 1.6: cron.job and cron.job_run_details with pg_cron's columns, and
-- cron.schedule / cron.unschedule with pg_cron's signatures and semantics (a named job is replaced
-- by a new schedule of the same name for the same user). Nothing runs the jobs: a test reads a
-- job's command and runs it as pg_cron would, as the job's user in the job's database.
create schema cron;
create sequence cron.jobid_seq;
create sequence cron.runid_seq;

create table cron.job (
  jobid bigint primary key default nextval('cron.jobid_seq'),
  schedule text not null,
  command text not null,
  nodename text not null default 'localhost',
  nodeport int not null default coalesce(inet_server_port(), current_setting('port')::int),
  database text not null default current_database(),
  username text not null default current_user,
  active boolean not null default true,
  jobname text,
  constraint jobname_username_uniq unique (jobname, username)
);

create table cron.job_run_details (
  jobid bigint,
  runid bigint primary key default nextval('cron.runid_seq'),
  job_pid integer,
  database text,
  username text,
  command text,
  status text,
  return_message text,
  start_time timestamptz,
  end_time timestamptz
);

-- pg_cron accepts five cron fields, '[1-59] seconds', or one of the @ keywords.
create function cron._valid_schedule(schedule text) returns boolean
language sql immutable
as $$
  select schedule ~ '^\s*(@(yearly|annually|monthly|weekly|daily|hourly|reboot)|[1-5]?[0-9] seconds?|(\S+\s+){4}\S+)\s*$'
$$;

create function cron.schedule(job_name text, schedule text, command text) returns bigint
language plpgsql
as $$
declare
  v_jobid bigint;
begin
  if not cron._valid_schedule(schedule) then
    raise exception 'invalid schedule: %', schedule;
  end if;
  insert into cron.job (schedule, command, jobname)
  values (schedule, command, job_name)
  on conflict (jobname, username) do update set schedule = excluded.schedule, command = excluded.command
  returning jobid into v_jobid;
  return v_jobid;
end
$$;

create function cron.schedule(schedule text, command text) returns bigint
language plpgsql
as $$
declare
  v_jobid bigint;
begin
  if not cron._valid_schedule(schedule) then
    raise exception 'invalid schedule: %', schedule;
  end if;
  insert into cron.job (schedule, command) values (schedule, command) returning jobid into v_jobid;
  return v_jobid;
end
$$;

create function cron.unschedule(job_name text) returns boolean
language plpgsql
as $$
begin
  delete from cron.job where jobname = job_name and username = current_user;
  if not found then
    raise exception 'could not find valid entry for job ''%''', job_name;
  end if;
  return true;
end
$$;

create function cron.unschedule(job_id bigint) returns boolean
language plpgsql
as $$
begin
  delete from cron.job where jobid = job_id;
  if not found then
    raise exception 'could not find valid entry for job %', job_id;
  end if;
  return true;
end
$$;
