document.getElementById("status").textContent = "loading";
