-- wrk: dial 127.0.0.1 whatever the URL's hostname resolves to (it need not resolve at all);
-- the hostname still goes into SNI and the Host header.
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end
