-- Local stand-in for pg_net: the request queue with pg_net's columns and net.http_post with its
-- signature, defaults and checks (the body as UTF-8 bytes of the JSON, params URL-encoded onto the
-- URL, a Content-Type other than application/json refused). Requests wait in the queue for a test.
create schema net;
create type net.http_method as enum ('GET', 'POST', 'DELETE');

create table net.http_request_queue (
  id bigserial primary key,
  method net.http_method not null,
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds integer not null
);

create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds int default 5000
) returns bigint
language plpgsql volatile parallel safe
as $$
declare
  v_id bigint;
  v_content_type text;
  v_query text;
begin
  select value into v_content_type
  from jsonb_each_text(coalesce(headers, '{}'::jsonb)) where lower(key) = 'content-type' limit 1;
  if v_content_type is null then
    headers := coalesce(headers, '{}'::jsonb) || '{"Content-Type": "application/json"}'::jsonb;
  elsif v_content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;
  select string_agg(key || '=' || value, '&') into v_query from jsonb_each_text(coalesce(params, '{}'::jsonb));
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    'POST',
    case when v_query is null then url else url || case when url like '%?%' then '&' else '?' end || v_query end,
    headers,
    convert_to(body::text, 'UTF8'),
    timeout_milliseconds
  )
  returning id into v_id;
  return v_id;
end
$$;
