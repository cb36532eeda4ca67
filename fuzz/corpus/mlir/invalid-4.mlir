lina.grid @g shape = [4] groups = {ep = 0 : i64}
